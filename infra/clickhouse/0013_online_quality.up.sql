-- Online quality counts per time bucket, model version and A/B arm: the recommendations
-- published (by trigger time) in [start, end), and how many of them earned an attributed
-- click and an attributed purchase. Attribution is attributed_clicks' last-touch rule
-- (0010): a click on an item of a recommendation for the same tenant and user, after its
-- trigger and at most window_s later, credits the latest such recommendation, so each click
-- counts once; recommendations up to window_s after `end` compete for the clicks too, so a
-- window's figures do not change with where it ends. A recommendation counts once however
-- many of its items were clicked, so clicked / recommendations is a proportion (the
-- attributed click-through rate) and takes a Wilson interval (0012); readers sum the counts
-- over whatever they group by, then take the rate and interval. bucket_s = 0: one bucket per
-- window (labelled `start`); tenant = '' means every tenant.
CREATE VIEW IF NOT EXISTS online_quality AS
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
