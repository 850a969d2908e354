-- Per-hour rollup, fed on insert by a materialized view over cost_events (same columns as
-- cost_minute), kept three years for budgets and trends.
CREATE TABLE IF NOT EXISTS cost_hour
(
    hour             DateTime('UTC'),
    tenant           LowCardinality(String),
    model_version    LowCardinality(String),
    kind             LowCardinality(String),
    event_type       LowCardinality(String),
    worker           LowCardinality(String),
    device           LowCardinality(String),
    rows             SimpleAggregateFunction(sum, UInt64),
    events           SimpleAggregateFunction(sum, UInt64),
    recommendations  SimpleAggregateFunction(sum, UInt64),
    device_seconds   SimpleAggregateFunction(sum, Float64),
    cpu_seconds      SimpleAggregateFunction(sum, Float64),
    wall_seconds     SimpleAggregateFunction(sum, Float64),
    bytes_in         SimpleAggregateFunction(sum, UInt64),
    bytes_out        SimpleAggregateFunction(sum, UInt64),
    cost_compute_usd SimpleAggregateFunction(sum, Decimal128(12)),
    cost_storage_usd SimpleAggregateFunction(sum, Decimal128(12)),
    cost_people_usd  SimpleAggregateFunction(sum, Decimal128(12)),
    cost_ops_usd     SimpleAggregateFunction(sum, Decimal128(12)),
    cost_usd         SimpleAggregateFunction(sum, Decimal128(12)),
    latency_ms       AggregateFunction(quantilesArray(0.5, 0.95, 0.99), Array(Float32))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, tenant, model_version, kind, event_type, worker, device)
TTL hour + INTERVAL 1095 DAY;

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
    sum(toDecimal128(cost_compute_usd, 12)) AS cost_compute_usd,
    sum(toDecimal128(cost_storage_usd, 12)) AS cost_storage_usd,
    sum(toDecimal128(cost_people_usd, 12)) AS cost_people_usd,
    sum(toDecimal128(cost_ops_usd, 12)) AS cost_ops_usd,
    sum(toDecimal128(cost_usd, 12)) AS cost_usd,
    quantilesArrayState(0.5, 0.95, 0.99)(latencies_ms) AS latency_ms
FROM cost_events
GROUP BY hour, tenant, model_version, kind, event_type, worker, device;

-- Backfill what cost_events held before this view existed (the sink is the only writer and
-- migrates before it consumes, so nothing is inserted meanwhile).
INSERT INTO cost_hour
SELECT
    toStartOfHour(ts) AS hour,
    tenant, model_version, kind, event_type, worker, device,
    count(), sum(events), sum(recommendations), sum(device_seconds), sum(cpu_seconds),
    sum(wall_seconds), sum(bytes_in), sum(bytes_out),
    sum(toDecimal128(cost_compute_usd, 12)), sum(toDecimal128(cost_storage_usd, 12)),
    sum(toDecimal128(cost_people_usd, 12)), sum(toDecimal128(cost_ops_usd, 12)),
    sum(toDecimal128(cost_usd, 12)),
    quantilesArrayState(0.5, 0.95, 0.99)(latencies_ms)
FROM cost_events FINAL
GROUP BY hour, tenant, model_version, kind, event_type, worker, device
