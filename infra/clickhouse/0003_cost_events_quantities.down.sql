ALTER TABLE cost_events DROP COLUMN IF EXISTS clickhouse_bytes, DROP COLUMN IF EXISTS ram_gb_seconds
