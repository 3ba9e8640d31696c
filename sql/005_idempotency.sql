-- The HTTP queue API's Idempotency-Key: a retried request gets the first
-- one's answer for 24 hours instead of queueing twice.
CREATE TABLE @schema@.idempotency_keys (
  key          text PRIMARY KEY,
  reply_status int NOT NULL,
  reply_body   text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);
