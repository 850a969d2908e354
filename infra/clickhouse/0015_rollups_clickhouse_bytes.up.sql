-- The rollups keep what the sink wrote to ClickHouse (bytes from the server's part sizes, rows),
-- so reports read ClickHouse storage by table without the raw rows. Rows rolled up before
-- this carried none (clickhouse_bytes was always 0 then). The views are recreated with the
-- columns; the sink, the only writer, migrates before it consumes, so no insert is missed.
ALTER TABLE cost_minute
    ADD COLUMN IF NOT EXISTS clickhouse_bytes SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER bytes_out,
    ADD COLUMN IF NOT EXISTS rows_written SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER clickhouse_bytes;

ALTER TABLE cost_hour
    ADD COLUMN IF NOT EXISTS clickhouse_bytes SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER bytes_out,
    ADD COLUMN IF NOT EXISTS rows_written SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER clickhouse_bytes;

DROP VIEW IF EXISTS cost_minute_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS cost_minute_mv TO cost_minute AS
SELECT
    toStartOfMinute(ts) AS minute,
    tenant, model_version, kind, event_type, worker, device,
    count() AS rows,
    sum(events) AS events,
    sum(recommendations) AS recommendations,
    sum(device_seconds) AS device_seconds,
    sum(cpu_seconds) AS cpu_seconds,
    sum(wall_seconds) AS wall_seconds,
    sum(bytes_in) AS bytes_in,
    sum(bytes_out) AS bytes_out,
    sum(clickhouse_bytes) AS clickhouse_bytes,
    sum(rows_written) AS rows_written,
    sum(toDecimal128(cost_compute_usd, 12)) AS cost_compute_usd,
    sum(toDecimal128(cost_storage_usd, 12)) AS cost_storage_usd,
    sum(toDecimal128(cost_people_usd, 12)) AS cost_people_usd,
    sum(toDecimal128(cost_ops_usd, 12)) AS cost_ops_usd,
    sum(toDecimal128(cost_usd, 12)) AS cost_usd,
    quantilesArrayState(0.5, 0.95, 0.99)(latencies_ms) AS latency_ms
FROM cost_events
GROUP BY minute, tenant, model_version, kind, event_type, worker, device;

DROP VIEW IF EXISTS cost_hour_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS cost_hour_mv TO cost_hour AS
SELECT
    toStartOfHour(ts) AS hour,
    tenant, model_version, kind, event_type, worker, device,
    count() AS rows,
    sum(events) AS events,
    sum(recommendations) AS recommendations,
    sum(device_seconds) AS device_seconds,
    sum(cpu_seconds) AS cpu_seconds,
    sum(wall_seconds) AS wall_seconds,
    sum(bytes_in) AS bytes_in,
    sum(bytes_out) AS bytes_out,
    sum(clickhouse_bytes) AS clickhouse_bytes,
    sum(rows_written) AS rows_written,
    sum(toDecimal128(cost_compute_usd, 12)) AS cost_compute_usd,
    sum(toDecimal128(cost_storage_usd, 12)) AS cost_storage_usd,
    sum(toDecimal128(cost_people_usd, 12)) AS cost_people_usd,
    sum(toDecimal128(cost_ops_usd, 12)) AS cost_ops_usd,
    sum(toDecimal128(cost_usd, 12)) AS cost_usd,
    quantilesArrayState(0.5, 0.95, 0.99)(latencies_ms) AS latency_ms
FROM cost_events
GROUP BY hour, tenant, model_version, kind, event_type, worker, device
