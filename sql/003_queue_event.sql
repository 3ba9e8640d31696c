-- Custom events from SQL (SPEC §5): queue_event writes a transactional logical
-- message to the WAL, so the event exists if and only if the caller's
-- transaction commits, and reaches walhook through the replication stream
-- like a row change (exactly once, keyed on its position). The message is a
-- JSON header line, a newline, then the payload as jsonb prints it (jsonb
-- text never holds a raw newline). Applied to the eventing database as a
-- migration, and to a separate source database by walhook run/init.
CREATE OR REPLACE FUNCTION @schema@.queue_event(
    type text, payload jsonb DEFAULT '{}', delay interval DEFAULT '0',
    at timestamptz DEFAULT NULL)
RETURNS void LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
  IF type IS NULL OR type !~ '^[A-Za-z0-9_-]+$' THEN
    RAISE EXCEPTION 'queue_event: type % is not a custom event type (letters, digits, _ and -)',
      coalesce(quote_literal(type), 'NULL') USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF type ~ '^(DB|FILE)_' THEN
    RAISE EXCEPTION 'queue_event: % is reserved for row and file events; custom types must not start with DB_ or FILE_',
      quote_literal(type) USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF delay IS NULL OR delay < interval '0' THEN
    RAISE EXCEPTION 'queue_event: delay must be zero or more, not %', coalesce(delay::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM pg_logical_emit_message(true, '@prefix@',
    json_build_object('type', type,
                      'delay_ms', round(extract(epoch FROM delay) * 1000)::int8,
                      'at', CASE WHEN at IS NOT NULL
                                 THEN round(extract(epoch FROM at) * 1000)::int8 END)::text
    || E'\n' || coalesce(payload, 'null'::jsonb)::text);
END
$fn$;

COMMENT ON FUNCTION @schema@.queue_event(text, jsonb, interval, timestamptz) IS
  'Queues a custom event with the caller''s transaction: due at greatest(commit time, at) + delay';
