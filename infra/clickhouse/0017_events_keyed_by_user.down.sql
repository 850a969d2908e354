-- Back to 0008's key and 0010's / 0013's views.
DROP TABLE IF EXISTS clicks_log_replaced;
DROP TABLE IF EXISTS clicks_log_rekeyed;
CREATE TABLE clicks_log_rekeyed
(
    event_id   String,
    ts         DateTime64(3, 'UTC'),
    tenant     LowCardinality(String),
    user_id    String,
    item_id    String,
    action     LowCardinality(String),
    session_id String,
    price      Nullable(Decimal64(6))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (tenant, ts, event_id)
TTL toDateTime(ts) + INTERVAL 90 DAY;
INSERT INTO clicks_log_rekeyed SELECT event_id, ts, tenant, user_id, item_id, action, session_id, price FROM clicks_log;
RENAME TABLE clicks_log TO clicks_log_replaced, clicks_log_rekeyed TO clicks_log;
DROP TABLE clicks_log_replaced;

CREATE OR REPLACE VIEW attributed_clicks AS
SELECT
    c.event_id AS event_id,
    c.tenant AS tenant,
    any(c.ts) AS ts,
    any(c.action) AS action,
    argMax(r.model_version, r.trigger_ts) AS model_version,
    max(r.trigger_ts) AS rec_ts
FROM
(
    SELECT event_id, tenant, user_id, item_id, action, ts FROM clicks_log FINAL
    WHERE ts >= {start:DateTime64(3, 'UTC')} AND ts < {end:DateTime64(3, 'UTC')}
      AND ({tenant:String} = '' OR tenant = {tenant:String})
) AS c
INNER JOIN
(
    SELECT tenant, user_id, trigger_ts, trigger_event_id, model_version, items FROM recommendations_log
    WHERE trigger_ts >= subtractSeconds({start:DateTime64(3, 'UTC')}, {window_s:UInt32})
      AND trigger_ts < {end:DateTime64(3, 'UTC')}
      AND ({tenant:String} = '' OR tenant = {tenant:String})
) AS r ON c.tenant = r.tenant AND c.user_id = r.user_id
WHERE r.trigger_ts < c.ts AND c.ts <= addSeconds(r.trigger_ts, {window_s:UInt32})
  AND c.event_id != r.trigger_event_id AND has(r.items, c.item_id)
GROUP BY c.event_id, c.tenant;

CREATE OR REPLACE VIEW online_quality AS
SELECT
    if({bucket_s:UInt32} = 0, {start:DateTime64(3, 'UTC')},
       toDateTime64(intDiv(toUnixTimestamp(r.trigger_ts), greatest({bucket_s:UInt32}, 1))
                    * greatest({bucket_s:UInt32}, 1), 3, 'UTC')) AS bucket,
    r.tenant AS tenant,
    r.model_version AS model_version,
    r.arm AS arm,
    count() AS recommendations,
    countIf(a.clicks > 0) AS clicked,
    countIf(a.purchases > 0) AS purchased
FROM
(
    SELECT rec_id, tenant, trigger_ts, model_version, arm FROM recommendations_log FINAL
    WHERE trigger_ts >= {start:DateTime64(3, 'UTC')} AND trigger_ts < {end:DateTime64(3, 'UTC')}
      AND ({tenant:String} = '' OR tenant = {tenant:String})
) AS r
LEFT JOIN
(
    SELECT rec_id, count() AS clicks, countIf(action = 'purchase') AS purchases
    FROM
    (
        SELECT c.event_id AS event_id, any(c.action) AS action, argMax(s.rec_id, s.trigger_ts) AS rec_id
        FROM
        (
            SELECT event_id, tenant, user_id, item_id, action, ts FROM clicks_log FINAL
            WHERE ts >= {start:DateTime64(3, 'UTC')} AND ts < addSeconds({end:DateTime64(3, 'UTC')}, {window_s:UInt32})
              AND ({tenant:String} = '' OR tenant = {tenant:String})
        ) AS c
        INNER JOIN
        (
            SELECT rec_id, tenant, user_id, trigger_ts, trigger_event_id, items FROM recommendations_log FINAL
            WHERE trigger_ts >= {start:DateTime64(3, 'UTC')}
              AND trigger_ts < addSeconds({end:DateTime64(3, 'UTC')}, {window_s:UInt32})
              AND ({tenant:String} = '' OR tenant = {tenant:String})
        ) AS s ON c.tenant = s.tenant AND c.user_id = s.user_id
        WHERE s.trigger_ts < c.ts AND c.ts <= addSeconds(s.trigger_ts, {window_s:UInt32})
          AND c.event_id != s.trigger_event_id AND has(s.items, c.item_id)
        GROUP BY c.event_id, c.tenant
    )
    GROUP BY rec_id
) AS a ON r.rec_id = a.rec_id
GROUP BY bucket, tenant, model_version, arm
