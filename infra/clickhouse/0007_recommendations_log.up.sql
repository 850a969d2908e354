-- Every published recommendation (topic `recommendations`), written by the sink: the left
-- side of click attribution. trigger_ts is the triggering event's own time, the clock the
-- clicks' ts are on too, so attribution compares like with like (also in a replay, where
-- publication happens long after the events). rec_id = trigger_event_id:model_version:
-- published ms names one published message: a re-read after a crash is dropped, a
-- re-score is kept.
CREATE TABLE IF NOT EXISTS recommendations_log
(
    rec_id           String,
    trigger_ts       DateTime64(3, 'UTC'),
    ts               DateTime64(3, 'UTC'),     -- when it was published
    tenant           LowCardinality(String),
    user_id          String,
    model_version    LowCardinality(String),
    trigger_event_id String,
    items            Array(String) CODEC(ZSTD(3)),
    latency_ms       Float32
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(trigger_ts)
ORDER BY (tenant, trigger_ts, rec_id)
TTL toDateTime(trigger_ts) + INTERVAL 90 DAY
