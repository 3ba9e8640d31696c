-- walhook 020: what the admin API (SPEC §12) reads.
-- origin_id: the event whose webhook answer queued this one (a chained
-- event), or whose failure queued it (its dlq_<trigger> event); NULL for
-- everything else and for events stored before this migration. A nullable
-- column without a default: no table rewrite. The index holds only chained
-- and dlq_ events, so capture's inserts do not touch it.
-- event_logs_failed: the failed events of a trigger, newest first, for the
-- bulk redelivery's count and the events screen's "failed" filter; it
-- holds only failed rows (an event enters it once, when it fails).
-- Safe to apply twice.
ALTER TABLE @schema@.event_logs ADD COLUMN IF NOT EXISTS origin_id bigint;
CREATE INDEX IF NOT EXISTS event_logs_origin ON @schema@.event_logs (origin_id)
  WHERE origin_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS event_logs_failed ON @schema@.event_logs (trigger_name, id)
  WHERE status = 'failed';
