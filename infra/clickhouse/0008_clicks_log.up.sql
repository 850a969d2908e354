-- Valid clicks (topic `clicks`), written by the sink: the right side of click attribution.
-- event_id is the producer's id, so a client retry or a re-read is stored once.
CREATE TABLE IF NOT EXISTS clicks_log
(
    event_id   String,
    ts         DateTime64(3, 'UTC'),
    tenant     LowCardinality(String),
    user_id    String,
    item_id    String,
    action     LowCardinality(String),   -- view | cart | purchase
    session_id String,
    price      Nullable(Decimal64(6))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (tenant, ts, event_id)
TTL toDateTime(ts) + INTERVAL 90 DAY
