-- Cost alerts (also published to topic `cost-alerts`). alert_id is derived from what the
-- alert is about (kind, metric, dims, minute or window), so re-evaluating never re-alerts.
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id      String,
    ts            DateTime64(3, 'UTC'),
    kind          LowCardinality(String),   -- anomaly | budget
    metric        LowCardinality(String),   -- cost_usd | cost_per_1k_recs_usd | burn_rate
    tenant        LowCardinality(String),
    model_version LowCardinality(String),
    severity      LowCardinality(String),   -- warning | critical
    observed      Decimal128(12),
    expected      Decimal128(12),
    window        String,
    dims          String,                   -- the alert's dims as JSON
    data_ts       DateTime64(3, 'UTC')      -- the minute (or window end) the alert is about
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY alert_id
TTL toDateTime(ts) + INTERVAL 365 DAY
