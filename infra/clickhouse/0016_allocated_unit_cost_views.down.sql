DROP VIEW IF EXISTS cost_per_attributed_click;

DROP VIEW IF EXISTS idle_share;

DROP VIEW IF EXISTS unit_costs_hourly;

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
