-- walhook 011: retention finds old idempotency keys by their age.
-- Deleting the keys older than 24 hours read the whole table every minute
-- (no index had their age): up to a day of queue API calls, read again
-- each minute, the whole of it while no key was that old yet. With an index
-- on created_at the delete reads the keys it deletes. A key stored costs
-- one index entry more. The build locks the table's writes for as long as
-- it takes, once (the table holds at most a day of keys).
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON @schema@.idempotency_keys (created_at);
