-- walhook 008: trigger_status without reading the whole of event_logs.
-- Its counts by status were a scan of event_logs: about 200 ms per million
-- rows, seconds for a week of history, on every `\watch 1`. Now whatever
-- moves event_logs rows into, out of or between the final statuses
-- (walhook, the SQL functions, a user's statements) appends its net change
-- per trigger to event_counts in the same transaction, so the sums are exact
-- in any snapshot. The view sums those rows, and walhook folds them into one
-- row per trigger every few seconds. Staged events are still read, for
-- their count, in_flight and oldest_staged_age, through the indexes that
-- hold them: a backlog is read, a history is not.

CREATE TABLE @schema@.event_counts (
  trigger_name text NOT NULL,
  processed    bigint NOT NULL,
  failed       bigint NOT NULL,
  cancel       bigint NOT NULL
);

-- The functions run as the schema's owner: whoever may write event_logs
-- may count. walhook's own writes must stay as fast as they were, so:
-- - inserts are counted row by row, only for rows inserted in a final status
--   (a payload over the limit; a user's): a staged row costs the WHEN test;
-- - updates are counted row by row, only where the status (or trigger) moves:
--   claims and lease renewals do not even reach the WHEN test; walhook's
--   delivery connection, which records outcomes in batches, says so with
--   walhook.counts_own = on and writes its own counts in the same
--   statement (src/store/delivery_store.cpp), and its rows are skipped here;
-- - deletes (retention, in batches) are counted a statement at a time.
CREATE FUNCTION @schema@.count_inserted_event() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO @schema@.event_counts
  VALUES (NEW.trigger_name, (NEW.status = 'processed')::int, (NEW.status = 'failed')::int,
          (NEW.status = 'cancel')::int);
  RETURN NULL;
END $$;

CREATE FUNCTION @schema@.count_updated_event() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF OLD.status <> 'staged' THEN
    INSERT INTO @schema@.event_counts
    VALUES (OLD.trigger_name, -(OLD.status = 'processed')::int, -(OLD.status = 'failed')::int,
            -(OLD.status = 'cancel')::int);
  END IF;
  IF NEW.status <> 'staged' THEN
    INSERT INTO @schema@.event_counts
    VALUES (NEW.trigger_name, (NEW.status = 'processed')::int, (NEW.status = 'failed')::int,
            (NEW.status = 'cancel')::int);
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION @schema@.count_deleted_events() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO @schema@.event_counts
  SELECT trigger_name, -count(*) FILTER (WHERE status = 'processed'),
         -count(*) FILTER (WHERE status = 'failed'), -count(*) FILTER (WHERE status = 'cancel')
    FROM old_rows WHERE status <> 'staged' GROUP BY trigger_name;
  RETURN NULL;
END $$;

CREATE FUNCTION @schema@.count_truncated_events() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  DELETE FROM @schema@.event_counts;
  RETURN NULL;
END $$;

CREATE TRIGGER count_inserted AFTER INSERT ON @schema@.event_logs
  FOR EACH ROW WHEN (NEW.status <> 'staged')
  EXECUTE FUNCTION @schema@.count_inserted_event();
CREATE TRIGGER count_updated AFTER UPDATE OF status, trigger_name ON @schema@.event_logs
  FOR EACH ROW WHEN ((OLD.status IS DISTINCT FROM NEW.status
                      OR OLD.trigger_name IS DISTINCT FROM NEW.trigger_name)
                     AND current_setting('walhook.counts_own', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION @schema@.count_updated_event();
CREATE TRIGGER count_deleted AFTER DELETE ON @schema@.event_logs
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION @schema@.count_deleted_events();
CREATE TRIGGER count_truncated AFTER TRUNCATE ON @schema@.event_logs
  FOR EACH STATEMENT EXECUTE FUNCTION @schema@.count_truncated_events();

-- What is there already. CREATE TRIGGER above holds off every writer of
-- event_logs until this migration commits, so nothing is counted twice or
-- missed.
INSERT INTO @schema@.event_counts
SELECT trigger_name, count(*) FILTER (WHERE status = 'processed'),
       count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'cancel')
  FROM @schema@.event_logs WHERE status <> 'staged' GROUP BY trigger_name;

-- last_success_at comes from delivery_health alone, which every batch of
-- outcomes writes; events processed before it existed are read once here.
INSERT INTO @schema@.delivery_health AS h (trigger_name, last_success_at)
SELECT trigger_name, max(processed_at) FROM @schema@.event_logs
 WHERE status = 'processed' GROUP BY trigger_name
ON CONFLICT (trigger_name) DO UPDATE
  SET last_success_at = greatest(h.last_success_at, excluded.last_success_at);

-- Staged events are read through the indexes that hold them: event_logs_due
-- (no order key) and event_logs_ordered (keyed). last_success_at: see above.
CREATE OR REPLACE VIEW @schema@.trigger_status AS
  SELECT t.name AS trigger_name,
         t.enabled,
         t.enabled AND NOT coalesce(h.blocking, false) AS active,
         coalesce(w.staged, 0) AS staged,
         coalesce(c.processed, 0) AS processed,
         coalesce(c.failed, 0) AS failed,
         coalesce(c.cancel, 0) AS cancel,
         coalesce(w.in_flight, 0) AS in_flight,
         now() - w.oldest_due AS oldest_staged_age,
         d.last_success_at,
         h.last_error,
         CASE WHEN d.last_error_at >= coalesce(d.last_success_at, '-infinity')
              THEN d.last_error END AS last_delivery_error
    FROM @schema@.triggers t
    LEFT JOIN @schema@.trigger_health h ON h.trigger_name = t.name
    LEFT JOIN @schema@.delivery_health d ON d.trigger_name = t.name
    LEFT JOIN (
      SELECT trigger_name, sum(processed)::bigint AS processed,
             sum(failed)::bigint AS failed, sum(cancel)::bigint AS cancel
        FROM @schema@.event_counts
       GROUP BY trigger_name) c ON c.trigger_name = t.name
    LEFT JOIN (
      SELECT trigger_name, count(*) AS staged,
             count(*) FILTER (WHERE lease_until > now()) AS in_flight,
             min(due) FILTER (WHERE due <= now()) AS oldest_due
        FROM (SELECT trigger_name, lease_until, coalesce(next_at, ts) AS due
                FROM @schema@.event_logs WHERE status = 'staged' AND order_key IS NULL
              UNION ALL
              SELECT trigger_name, lease_until, coalesce(next_at, ts)
                FROM @schema@.event_logs WHERE status = 'staged' AND order_key IS NOT NULL) s
       GROUP BY trigger_name) w ON w.trigger_name = t.name
   ORDER BY t.name;
