-- walhook 007: deleting a trigger needs no rights on event_logs.
-- The README's grants let a team manage eventing.triggers without writing
-- event_logs, but the row trigger that cancels a deleted trigger's staged
-- events ran as the deleting role: every DELETE of a trigger failed with
-- "permission denied for table event_logs". It now runs as the schema's
-- owner. It touches only the deleted trigger's own staged events, which the
-- deleting role was entitled to stop, and names every object in full.
ALTER FUNCTION @schema@.cancel_deleted_trigger_events()
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
