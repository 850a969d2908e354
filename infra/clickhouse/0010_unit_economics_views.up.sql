-- Unit economics over the hourly rollup. Idle rows (kind = 'idle') belong to a worker, not
-- to a tenant or version, so per-version figures count workload + shared cost only.
CREATE VIEW IF NOT EXISTS cost_by_dims AS
SELECT
    hour, tenant, model_version, kind,
    sum(cost_compute_usd) AS compute_usd,
    sum(cost_storage_usd) AS storage_usd,
    sum(cost_people_usd)  AS people_usd,
    sum(cost_ops_usd)     AS ops_usd,
    sum(cost_usd)         AS cost_usd,
    sum(recommendations)  AS recommendations,
    sum(events)           AS events
FROM cost_hour
GROUP BY hour, tenant, model_version, kind;

CREATE VIEW IF NOT EXISTS cost_per_1k_recs AS
SELECT
    hour, tenant, model_version,
    sum(cost_usd) AS cost_usd,
    sum(recommendations) AS recommendations,
    if(recommendations = 0, NULL, cost_usd * 1000 / recommendations) AS cost_per_1k_recs_usd
FROM cost_hour
WHERE kind != 'idle'
GROUP BY hour, tenant, model_version;

-- OpenCost's idle share: what no batch used, over the worker's whole cost.
CREATE VIEW IF NOT EXISTS idle_share AS
SELECT
    hour, worker, device,
    sumIf(cost_usd, kind = 'idle') AS idle_usd,
    sum(cost_usd) AS total_usd,
    if(total_usd = 0, NULL, toFloat64(idle_usd) / toFloat64(total_usd)) AS idle_share
FROM cost_hour
GROUP BY hour, worker, device;

-- Last-touch attribution in event time: a click on an item that a recommendation for the
-- same user and tenant showed, after that recommendation's triggering event and at most
-- window_s seconds later, is credited to that recommendation's model version (the latest
-- such recommendation, so each click counts once). tenant = '' means every tenant; a
-- tenant is filtered inside, before the join.
CREATE VIEW IF NOT EXISTS attributed_clicks AS
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

CREATE VIEW IF NOT EXISTS cost_per_attributed_click AS
SELECT
    k.tenant AS tenant,
    k.model_version AS model_version,
    k.cost_usd AS cost_usd,
    a.clicks AS attributed_clicks,
    a.purchases AS attributed_purchases,
    if(a.clicks = 0, NULL, k.cost_usd / a.clicks) AS cost_per_attributed_click_usd,
    if(a.purchases = 0, NULL, k.cost_usd / a.purchases) AS cost_per_attributed_purchase_usd
FROM
(
    SELECT tenant, model_version, sum(cost_usd) AS cost_usd FROM cost_minute
    WHERE kind != 'idle' AND minute >= {start:DateTime64(3, 'UTC')} AND minute < {end:DateTime64(3, 'UTC')}
      AND ({tenant:String} = '' OR tenant = {tenant:String})
    GROUP BY tenant, model_version
) AS k
LEFT JOIN
(
    SELECT tenant, model_version, count() AS clicks, countIf(action = 'purchase') AS purchases
    FROM attributed_clicks(start = {start:DateTime64(3, 'UTC')}, end = {end:DateTime64(3, 'UTC')},
                           window_s = {window_s:UInt32}, tenant = {tenant:String})
    GROUP BY tenant, model_version
) AS a ON k.tenant = a.tenant AND k.model_version = a.model_version
