-- One row per cost line: a scored batch's share for one (tenant, model_version, event_type),
-- or a worker's idle / shared cost for an interval. Quantities first, then money.
-- ReplacingMergeTree on the full sort key (which ends in event_id) drops a re-inserted row.
CREATE TABLE IF NOT EXISTS cost_events
(
    event_id            String,
    batch_id            String,
    ts                  DateTime64(3, 'UTC'),
    kind                LowCardinality(String),   -- workload | idle | shared
    tenant              LowCardinality(String),
    model_version       LowCardinality(String),
    event_type          LowCardinality(String),   -- click | search | '' for idle/shared
    worker              LowCardinality(String),
    device              LowCardinality(String),
    price_sheet_version LowCardinality(String),
    events              UInt32,
    recommendations     UInt32,
    wall_seconds        Float64,
    device_seconds      Float64,
    cpu_seconds         Float64,
    bytes_in            UInt64,
    bytes_out           UInt64,
    state_bytes         UInt64,
    rows_written        UInt32,
    latencies_ms        Array(Float32) CODEC(ZSTD(3)),
    cost_compute_usd    Decimal64(12),
    cost_storage_usd    Decimal64(12),
    cost_people_usd     Decimal64(12),
    cost_ops_usd        Decimal64(12),
    cost_usd            Decimal64(12)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (tenant, model_version, kind, ts, event_id)
TTL toDateTime(ts) + INTERVAL 180 DAY
