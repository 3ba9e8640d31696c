-- walhook 017: a synchronous queue call's result whatever its size (SPEC §5).
-- response_body keeps the first 4 KiB of an answer; when a success's body is
-- longer, its "response" member (what a synchronous caller gets back) is kept
-- whole here. NULL otherwise: no cost for the usual small answers.
ALTER TABLE @schema@.invocation_logs ADD COLUMN IF NOT EXISTS response_result json;
