-- walhook 001: triggers, event_logs, invocation_logs, node status, views.
-- @schema@ is replaced by --schema (an identifier, quoted by walhook).

CREATE TABLE @schema@.triggers (
  name              text PRIMARY KEY CHECK (name ~ '^[a-z0-9_-]+$'),
  type              text NOT NULL CHECK (
                      type IN ('DB_INSERT', 'DB_UPDATE', 'DB_DELETE', 'FILE_CREATE', 'FILE_DELETE')
                      OR (type ~ '^[A-Za-z0-9_-]+$' AND type !~ '^(DB|FILE)_')),
  table_name        text CHECK (table_name IS NULL OR type LIKE 'DB\_%'),
  columns           text[] CHECK (columns IS NULL OR type = 'DB_UPDATE'),
  condition         text,
  path_prefix       text CHECK (path_prefix IS NULL OR type LIKE 'FILE\_%'),
  url               text NOT NULL CHECK (url ~* '^https?://[^/?#[:space:]]+'),
  headers           jsonb CHECK (headers IS NULL OR jsonb_typeof(headers) = 'object'),
  retries           int NOT NULL DEFAULT 3 CHECK (retries BETWEEN 0 AND 100),
  timeout_ms        int NOT NULL DEFAULT 5000 CHECK (timeout_ms BETWEEN 1 AND 3600000),
  retry_interval_ms int NOT NULL DEFAULT 5000 CHECK (retry_interval_ms BETWEEN 0 AND 3600000),
  ordered           boolean NOT NULL DEFAULT false,
  enabled           boolean NOT NULL DEFAULT true
);

-- Definition errors only walhook can judge, written by the node that streams.
CREATE TABLE @schema@.trigger_health (
  trigger_name text PRIMARY KEY,
  last_error   text NOT NULL,
  blocking     boolean NOT NULL,  -- true: the trigger makes no events at all
  checked_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE @schema@.event_logs (
  id            bigserial PRIMARY KEY,
  trigger_name  text NOT NULL,
  type          text NOT NULL,
  status        text NOT NULL DEFAULT 'staged'
                  CHECK (status IN ('staged', 'processed', 'failed', 'cancel')),
  payload       json NOT NULL,
  ts            timestamptz NOT NULL,
  event_ts      timestamptz NOT NULL,
  attempts      int NOT NULL DEFAULT 0,
  remark        text,
  source_lsn    pg_lsn,
  source_seq    int,
  processed_at  timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source_lsn, source_seq, trigger_name)
);
CREATE INDEX event_logs_staged_ts ON @schema@.event_logs (ts) WHERE status = 'staged';

CREATE TABLE @schema@.invocation_logs (
  id                   bigserial PRIMARY KEY,
  event_id             bigint NOT NULL,
  invocation_time      timestamptz NOT NULL DEFAULT now(),
  response_status_code int,
  response_body        text,
  error_msg            text,
  duration_ms          int
);
CREATE INDEX invocation_logs_event ON @schema@.invocation_logs (event_id);

-- One row per walhook node, refreshed every second.
CREATE TABLE @schema@.nodes (
  node_id          text PRIMARY KEY,
  role             text NOT NULL,
  slot_name        text NOT NULL,
  confirmed_lsn    pg_lsn,
  lag_bytes        bigint,
  events_per_s     double precision NOT NULL DEFAULT 0,
  deliveries_per_s double precision NOT NULL DEFAULT 0,
  in_flight        int NOT NULL DEFAULT 0,
  updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE VIEW @schema@.bridge_status AS
  SELECT node_id, role, slot_name, confirmed_lsn, lag_bytes,
         round(events_per_s::numeric, 1) AS events_per_s,
         round(deliveries_per_s::numeric, 1) AS deliveries_per_s,
         in_flight, updated_at
    FROM @schema@.nodes
   WHERE updated_at > now() - interval '10 seconds'
   ORDER BY role DESC, node_id;

CREATE VIEW @schema@.trigger_status AS
  SELECT t.name AS trigger_name,
         t.enabled,
         t.enabled AND NOT coalesce(h.blocking, false) AS active,
         coalesce(c.staged, 0) AS staged,
         coalesce(c.processed, 0) AS processed,
         coalesce(c.failed, 0) AS failed,
         coalesce(c.cancel, 0) AS cancel,
         0::bigint AS in_flight,
         now() - c.oldest_due AS oldest_staged_age,
         c.last_success_at,
         h.last_error,
         NULL::text AS last_delivery_error
    FROM @schema@.triggers t
    LEFT JOIN @schema@.trigger_health h ON h.trigger_name = t.name
    LEFT JOIN (
      SELECT trigger_name,
             count(*) FILTER (WHERE status = 'staged') AS staged,
             count(*) FILTER (WHERE status = 'processed') AS processed,
             count(*) FILTER (WHERE status = 'failed') AS failed,
             count(*) FILTER (WHERE status = 'cancel') AS cancel,
             min(ts) FILTER (WHERE status = 'staged' AND ts <= now()) AS oldest_due,
             max(processed_at) FILTER (WHERE status = 'processed') AS last_success_at
        FROM @schema@.event_logs
       GROUP BY trigger_name) c ON c.trigger_name = t.name
   ORDER BY t.name;

-- Trigger edits reach running walhook nodes within a second.
CREATE FUNCTION @schema@.notify_triggers_changed() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('@channel@', '');
  RETURN NULL;
END $$;
CREATE TRIGGER triggers_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON @schema@.triggers FOR EACH STATEMENT
  EXECUTE FUNCTION @schema@.notify_triggers_changed();

-- A deleted trigger's staged events become 'cancel' (SPEC §3).
CREATE FUNCTION @schema@.cancel_deleted_trigger_events() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  UPDATE @schema@.event_logs SET status = 'cancel', remark = 'trigger deleted'
   WHERE trigger_name = OLD.name AND status = 'staged';
  DELETE FROM @schema@.trigger_health WHERE trigger_name = OLD.name;
  RETURN NULL;
END $$;
CREATE TRIGGER triggers_deleted AFTER DELETE ON @schema@.triggers
  FOR EACH ROW EXECUTE FUNCTION @schema@.cancel_deleted_trigger_events();
