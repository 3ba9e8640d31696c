-- walhook 013: an Idempotency-Key remembers its request and its final answer
-- (SPEC §9). request_hash is the hex SHA-256 of the request's body: the same
-- key with another body is refused (422); NULL (keys stored before this
-- migration) matches any. final is false while a synchronous call waits for
-- its webhook: a duplicate then gets 409, and the answer stored at the end
-- (200, 502 or 504) is what every retry gets.
ALTER TABLE @schema@.idempotency_keys
  ADD COLUMN IF NOT EXISTS request_hash text,
  ADD COLUMN IF NOT EXISTS final boolean NOT NULL DEFAULT true;
