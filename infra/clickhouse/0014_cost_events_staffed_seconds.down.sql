ALTER TABLE cost_events DROP COLUMN IF EXISTS staffed_seconds
