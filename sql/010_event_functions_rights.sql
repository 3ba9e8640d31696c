-- walhook 010: redeliver() and cancel() for a team that cannot write event_logs.
-- Both ran as their caller, so they needed UPDATE on event_logs, which the
-- README's grants for a team do not give: redelivering a failed event took
-- the schema's owner. They now run as the owner (every name in them is
-- schema-qualified), and who may call them is granted instead: EXECUTE goes
-- from PUBLIC to nobody but the roles that could call them before, those
-- with UPDATE on event_logs (PUBLIC too, where it had that).
ALTER FUNCTION @schema@.redeliver(bigint) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @schema@.cancel(bigint) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE EXECUTE ON FUNCTION @schema@.redeliver(bigint), @schema@.cancel(bigint) FROM PUBLIC;
DO $$
DECLARE
  grantee text;
BEGIN
  FOR grantee IN
    SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END
      FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
      LEFT JOIN pg_roles r ON r.oid = a.grantee
     WHERE c.oid = '@schema@.event_logs'::regclass AND a.privilege_type = 'UPDATE'
  LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION @schema@.redeliver(bigint), '
                   '@schema@.cancel(bigint) TO %s', grantee);
  END LOOP;
END $$;
