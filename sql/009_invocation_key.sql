-- walhook 009: one index on invocation_logs instead of two.
-- Each attempt inserted a row into two indexes, (id) and (event_id), and
-- each index entry is a record of its own in the write-ahead log, which the
-- walsender of the slot reads one at a time. The primary key (event_id, id)
-- serves everything the second index served (an event's attempts, in order:
-- psql, redeliver's history, retention's deletes) and keeps id unique, so
-- the (event_id) index goes. Rebuilding the key takes a lock on the table
-- for as long as the build, once.
ALTER TABLE @schema@.invocation_logs
  DROP CONSTRAINT invocation_logs_pkey,
  ADD CONSTRAINT invocation_logs_pkey PRIMARY KEY (event_id, id);
DROP INDEX @schema@.invocation_logs_event;
