-- walhook 015: each trigger has an owner (SPEC §9, "Trigger authors").
-- A role that may write eventing.triggers could name any table, or none
-- (every table), and read rows it may not SELECT through its webhook and
-- event_logs. Now the database records who wrote each trigger, and walhook
-- fires a DB_* trigger only for tables its owner may SELECT in the source
-- database. The owner is the role that inserted or last updated the row
-- (current_user); only the schema's owner (and the roles that are members of
-- it, superusers too) may name another. Triggers written before this
-- migration belong to the schema's owner. Safe to apply twice.
ALTER TABLE @schema@.triggers ADD COLUMN IF NOT EXISTS owner text;
UPDATE @schema@.triggers
   SET owner = (SELECT pg_get_userbyid(n.nspowner)
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.oid = '@schema@.triggers'::regclass)
 WHERE owner IS NULL;
ALTER TABLE @schema@.triggers ALTER COLUMN owner SET NOT NULL;

-- Runs as the writing role (current_user is who writes), with a fixed
-- search_path so no function of the writer's can stand in for pg_has_role.
CREATE OR REPLACE FUNCTION @schema@.set_trigger_owner() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NEW.owner IS NOT NULL AND pg_has_role(current_user,
       (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = TG_TABLE_SCHEMA), 'MEMBER') THEN
    RETURN NEW;
  END IF;
  NEW.owner := current_user;
  RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS set_owner ON @schema@.triggers;
CREATE TRIGGER set_owner BEFORE INSERT OR UPDATE ON @schema@.triggers
  FOR EACH ROW EXECUTE FUNCTION @schema@.set_trigger_owner();
