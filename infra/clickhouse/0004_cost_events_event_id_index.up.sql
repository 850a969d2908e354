-- The sink looks event ids up before every insert (idempotency): a bloom filter lets that
-- lookup skip granules instead of reading every event_id of the ts range.
ALTER TABLE cost_events ADD INDEX IF NOT EXISTS event_id_bloom event_id TYPE bloom_filter(0.01) GRANULARITY 1
