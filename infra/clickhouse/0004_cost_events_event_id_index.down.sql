ALTER TABLE cost_events DROP INDEX IF EXISTS event_id_bloom
