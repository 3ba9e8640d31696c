-- walhook 002: delivery — attempts, leases, ordering keys, per-trigger
-- delivery health, redeliver() and cancel().

-- next_at: when the next attempt is due (NULL: at ts; retries leave ts alone).
-- lease_owner/lease_until: the node delivering the event, until when (the
-- database's clock); an expired lease lets any node take the event over.
-- order_key: for ordered triggers, the primary key the event is ordered by.
ALTER TABLE @schema@.event_logs
  ADD COLUMN next_at     timestamptz,
  ADD COLUMN lease_owner text,
  ADD COLUMN lease_until timestamptz,
  ADD COLUMN order_key   text;

DROP INDEX @schema@.event_logs_staged_ts;
-- The sweep: due staged events per trigger. Delivered rows leave the index.
CREATE INDEX event_logs_due ON @schema@.event_logs
  (trigger_name, (coalesce(next_at, ts))) WHERE status = 'staged';
-- Ordered triggers: the earliest staged event of each key goes first.
CREATE INDEX event_logs_ordered ON @schema@.event_logs
  (trigger_name, order_key, source_lsn, source_seq, id)
  WHERE status = 'staged' AND order_key IS NOT NULL;

ALTER TABLE @schema@.invocation_logs
  ADD COLUMN trigger_name text,
  ADD COLUMN attempt      int,
  ADD COLUMN node_id      text;

-- Written with each batch of outcomes.
CREATE TABLE @schema@.delivery_health (
  trigger_name    text PRIMARY KEY,
  last_success_at timestamptz,
  last_error      text,
  last_error_at   timestamptz
);

CREATE OR REPLACE VIEW @schema@.trigger_status AS
  SELECT t.name AS trigger_name,
         t.enabled,
         t.enabled AND NOT coalesce(h.blocking, false) AS active,
         coalesce(c.staged, 0) AS staged,
         coalesce(c.processed, 0) AS processed,
         coalesce(c.failed, 0) AS failed,
         coalesce(c.cancel, 0) AS cancel,
         coalesce(c.in_flight, 0) AS in_flight,
         now() - c.oldest_due AS oldest_staged_age,
         greatest(c.last_success_at, d.last_success_at) AS last_success_at,
         h.last_error,
         CASE WHEN d.last_error_at >= coalesce(d.last_success_at, '-infinity')
              THEN d.last_error END AS last_delivery_error
    FROM @schema@.triggers t
    LEFT JOIN @schema@.trigger_health h ON h.trigger_name = t.name
    LEFT JOIN @schema@.delivery_health d ON d.trigger_name = t.name
    LEFT JOIN (
      SELECT trigger_name,
             count(*) FILTER (WHERE status = 'staged') AS staged,
             count(*) FILTER (WHERE status = 'processed') AS processed,
             count(*) FILTER (WHERE status = 'failed') AS failed,
             count(*) FILTER (WHERE status = 'cancel') AS cancel,
             count(*) FILTER (WHERE status = 'staged' AND lease_until > now()) AS in_flight,
             min(coalesce(next_at, ts)) FILTER (WHERE status = 'staged'
               AND coalesce(next_at, ts) <= now()) AS oldest_due,
             max(processed_at) FILTER (WHERE status = 'processed') AS last_success_at
        FROM @schema@.event_logs
       GROUP BY trigger_name) c ON c.trigger_name = t.name
   ORDER BY t.name;

-- Puts an event back to staged, due now, with a fresh set of attempts.
-- False when there is no such event or it is being delivered right now.
CREATE FUNCTION @schema@.redeliver(event_id bigint) RETURNS boolean
  LANGUAGE plpgsql AS $$
DECLARE
  e @schema@.event_logs;
BEGIN
  SELECT * INTO e FROM @schema@.event_logs WHERE id = event_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  IF e.payload::text = 'null' AND e.status = 'failed' THEN
    RAISE EXCEPTION 'event % cannot be delivered: %', event_id, e.remark;
  END IF;
  IF e.status = 'staged' AND e.lease_until > now() THEN
    RETURN false;
  END IF;
  UPDATE @schema@.event_logs
     SET status = 'staged', attempts = 0, next_at = now(), processed_at = NULL,
         lease_owner = NULL, lease_until = NULL, remark = 'redelivery requested'
   WHERE id = event_id;
  PERFORM pg_notify('@channel@', 'wake');
  RETURN true;
END $$;

-- A staged event becomes 'cancel' and is not sent again (an attempt already
-- on the wire may still arrive). False when it is not staged.
CREATE FUNCTION @schema@.cancel(event_id bigint) RETURNS boolean
  LANGUAGE plpgsql AS $$
BEGIN
  UPDATE @schema@.event_logs
     SET status = 'cancel', remark = 'cancelled with cancel()', lease_owner = NULL,
         lease_until = NULL
   WHERE id = event_id AND status = 'staged';
  RETURN FOUND;
END $$;
