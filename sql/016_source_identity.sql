-- walhook 016: which source events were captured from (SPEC §13).
-- Per slot: the source's system identifier and timeline (IDENTIFY_SYSTEM),
-- the source epoch, and the last LSN walhook confirmed. At start walhook
-- compares them with the source and refuses to go on silently when the
-- source changed (another server, another timeline, a missing slot);
-- `walhook init --accept-gap` starts a new epoch.
CREATE TABLE IF NOT EXISTS @schema@.source_identity (
  slot_name          text PRIMARY KEY,
  system_identifier  text NOT NULL,
  timeline           bigint NOT NULL,
  epoch              int NOT NULL,
  confirmed_lsn      pg_lsn,
  recorded_at        timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);

-- The epoch of each WAL event, part of its unique key: the positions of a
-- new epoch may repeat an older one's, and must not be taken for replays.
-- walhook's capture connections say their epoch in walhook.epoch; events
-- that do not come from the WAL (source_lsn NULL) and events stored before
-- this migration are epoch 0. A constant default for the rows already there:
-- no table rewrite.
-- Safe to apply twice (tests re-apply migrations from an older version on).
ALTER TABLE @schema@.event_logs ADD COLUMN IF NOT EXISTS source_epoch int NOT NULL DEFAULT 0;
ALTER TABLE @schema@.event_logs ALTER COLUMN source_epoch
  SET DEFAULT coalesce(nullif(current_setting('walhook.epoch', true), '')::int, 0);
ALTER TABLE @schema@.event_logs
  DROP CONSTRAINT IF EXISTS event_logs_source_lsn_source_seq_trigger_name_key;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                  WHERE conrelid = '@schema@.event_logs'::regclass
                    AND conname = 'event_logs_source_key') THEN
    ALTER TABLE @schema@.event_logs ADD CONSTRAINT event_logs_source_key
      UNIQUE (source_epoch, source_lsn, source_seq, trigger_name);
  END IF;
END $$;
