-- Unit economics by the rule every report uses (streams/reports/allocation.py): idle and
-- shared cost (both a worker's, stored without a tenant) spread over (tenant, model version)
-- in proportion to workload cost, within each hour here and within the whole window for cost
-- per attributed click; idle share against the capacity that was paid for. Replaces 0010's
-- cost_per_1k_recs (workload + shared as stored then), idle_share (idle over everything,
-- people and ops included) and cost_per_attributed_click (workload + shared as stored then).
DROP VIEW IF EXISTS cost_per_attributed_click;

DROP VIEW IF EXISTS idle_share;

DROP VIEW IF EXISTS cost_per_1k_recs;

CREATE VIEW IF NOT EXISTS unit_costs_hourly AS
SELECT
    w.hour AS hour, w.tenant AS tenant, w.model_version AS model_version,
    w.workload_usd AS workload_cost_usd,
    toDecimal128(w.workload_usd * o.idle_usd / o.workload_usd, 12) AS idle_cost_usd,
    toDecimal128(w.workload_usd * o.shared_usd / o.workload_usd, 12) AS shared_cost_usd,
    workload_cost_usd + idle_cost_usd + shared_cost_usd AS attributed_cost_usd,
    w.recommendations AS recommendations, w.events AS events,
    if(w.recommendations = 0, NULL, toDecimal128(workload_cost_usd * 1000 / w.recommendations, 12))
        AS workload_cost_per_1k_usd,
    if(w.recommendations = 0, NULL, toDecimal128(attributed_cost_usd * 1000 / w.recommendations, 12))
        AS attributed_cost_per_1k_usd
FROM
(
    SELECT hour, tenant, model_version, sum(cost_usd) AS workload_usd, sum(recommendations) AS recommendations,
           sum(events) AS events
    FROM cost_hour WHERE kind = 'workload'
    GROUP BY hour, tenant, model_version
) AS w
INNER JOIN
(
    SELECT hour, sumIf(cost_usd, kind = 'workload') AS workload_usd, sumIf(cost_usd, kind = 'idle') AS idle_usd,
           sumIf(cost_usd, kind = 'shared') AS shared_usd
    FROM cost_hour GROUP BY hour HAVING workload_usd > 0
) AS o ON w.hour = o.hour;

CREATE VIEW IF NOT EXISTS idle_share AS
SELECT
    hour, worker, device,
    sumIf(cost_usd, kind = 'idle') AS idle_cost_usd,
    idle_cost_usd + sumIf(cost_compute_usd, kind = 'workload') AS capacity_cost_usd,
    if(capacity_cost_usd = 0, NULL, toFloat64(idle_cost_usd) / toFloat64(capacity_cost_usd)) AS idle_share
FROM cost_hour
WHERE kind IN ('idle', 'workload')
GROUP BY hour, worker, device
HAVING capacity_cost_usd > 0;

CREATE VIEW IF NOT EXISTS cost_per_attributed_click AS
SELECT
    w.tenant AS tenant,
    w.model_version AS model_version,
    toDecimal128(w.workload_usd + w.workload_usd * (o.idle_usd + o.shared_usd) / o.workload_usd, 12)
        AS attributed_cost_usd,
    a.clicks AS attributed_clicks,
    a.purchases AS attributed_purchases,
    if(a.clicks = 0, NULL, toDecimal128(attributed_cost_usd / a.clicks, 12)) AS attributed_cost_per_click_usd,
    if(a.purchases = 0, NULL, toDecimal128(attributed_cost_usd / a.purchases, 12)) AS attributed_cost_per_purchase_usd
FROM
(
    SELECT tenant, model_version, sum(cost_usd) AS workload_usd FROM cost_minute
    WHERE kind = 'workload' AND minute >= {start:DateTime64(3, 'UTC')} AND minute < {end:DateTime64(3, 'UTC')}
    GROUP BY tenant, model_version
) AS w
CROSS JOIN
(
    SELECT sumIf(cost_usd, kind = 'workload') AS workload_usd, sumIf(cost_usd, kind = 'idle') AS idle_usd,
           sumIf(cost_usd, kind = 'shared') AS shared_usd
    FROM cost_minute WHERE minute >= {start:DateTime64(3, 'UTC')} AND minute < {end:DateTime64(3, 'UTC')}
) AS o
LEFT JOIN
(
    SELECT tenant, model_version, count() AS clicks, countIf(action = 'purchase') AS purchases
    FROM attributed_clicks(start = {start:DateTime64(3, 'UTC')}, end = {end:DateTime64(3, 'UTC')},
                           window_s = {window_s:UInt32}, tenant = {tenant:String})
    GROUP BY tenant, model_version
) AS a ON w.tenant = a.tenant AND w.model_version = a.model_version
WHERE ({tenant:String} = '' OR w.tenant = {tenant:String}) AND o.workload_usd > 0
