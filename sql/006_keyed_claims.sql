-- walhook 006: claims read only the events they can take.
-- Events with an order key (stored for an ordered trigger) leave the due
-- index for one of their own in commit order: a claim for an ordered trigger
-- walks that index until it has found enough events that are first of their
-- key, instead of reading and sorting the trigger's whole keyed backlog, and
-- the due index no longer holds keyed events that claims must step over.
DROP INDEX @schema@.event_logs_due;
CREATE INDEX event_logs_due ON @schema@.event_logs
  (trigger_name, (coalesce(next_at, ts))) WHERE status = 'staged' AND order_key IS NULL;
-- The last condition is always true (ts is NOT NULL); the claim's walk has
-- it (a due test) and the first-of-its-key probe has not, which keeps that
-- probe on event_logs_ordered: on a table that grew fast from empty (no
-- statistics yet) the planner once chose this index for it and read every
-- keyed event of the trigger per probe.
CREATE INDEX event_logs_keyed ON @schema@.event_logs
  (trigger_name, source_lsn, source_seq, id)
  WHERE status = 'staged' AND order_key IS NOT NULL AND coalesce(next_at, ts) IS NOT NULL;
