-- Quantities the re-pricing query needs and 0001 did not keep: RAM reserved over the
-- line's wall time (GB x seconds) and ClickHouse bytes written.
ALTER TABLE cost_events
    ADD COLUMN IF NOT EXISTS ram_gb_seconds Float64 DEFAULT 0 AFTER cpu_seconds,
    ADD COLUMN IF NOT EXISTS clickhouse_bytes UInt64 DEFAULT 0 AFTER state_bytes
