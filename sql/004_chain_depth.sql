-- Events queued by a webhook's response (and dlq_<trigger> events) carry how
-- deep in such a chain they are; past 16 a response's events are refused.
ALTER TABLE @schema@.event_logs ADD COLUMN chain_depth int NOT NULL DEFAULT 0;
