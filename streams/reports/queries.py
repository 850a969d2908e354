"""The cost report's queries: pure functions returning (sql, params), every value bound.

All read the per-minute rollup over [start, end) except attribution (the logs, through the
`attributed_clicks` view) and the audit (raw rows vs both rollups). Only latency and
attribution filter by tenant: idle and shared cost are spread over every tenant's workload
(streams/costs/allocation.py), so a tenant's share needs everyone's, and the report keeps
the tenant's rows afterwards. SQL
text is built only from the constants below (slots filled with str.replace from allow-listed
fragments, never with values), so each query is deterministic and tested by exact string
comparison.
"""

from __future__ import annotations

from datetime import datetime

DIMENSIONS = ("model_version", "tenant")   # what the latency query may group by

_WINDOW = "minute >= {start:DateTime64(3, 'UTC')} AND minute < {end:DateTime64(3, 'UTC')}"

_BY_KIND = (
    "SELECT kind, sum(cost_compute_usd) AS compute_usd, sum(cost_storage_usd) AS storage_usd, "
    "sum(cost_people_usd) AS people_usd, sum(cost_ops_usd) AS ops_usd, sum(cost_usd) AS cost_usd, "
    "sum(recommendations) AS recommendations, sum(events) AS events "
    "FROM cost_minute WHERE " + _WINDOW + " GROUP BY kind ORDER BY kind")

_WORKLOAD = (
    "SELECT tenant, model_version, sum(cost_usd) AS workload_usd, sum(recommendations) AS recommendations, "
    "sum(events) AS events, sum(cpu_seconds) AS cpu_seconds, sum(device_seconds) AS device_seconds "
    "FROM cost_minute WHERE kind = 'workload' AND " + _WINDOW +
    " GROUP BY tenant, model_version ORDER BY tenant, model_version")

_LATENCY = (
    "SELECT {dim}, quantilesArrayMerge(0.5, 0.95, 0.99)(latency_ms) AS latency_ms FROM cost_minute "
    "WHERE kind = 'workload' AND " + _WINDOW + "{tenant} GROUP BY {dim} ORDER BY {dim}")

_CAPACITY = (
    "SELECT worker, device, sumIf(cost_usd, kind = 'idle') AS idle_usd, "
    "sumIf(cost_compute_usd, kind = 'workload') AS used_usd, sumIf(wall_seconds, kind = 'idle') AS idle_seconds "
    "FROM cost_minute WHERE kind IN ('idle', 'workload') AND " + _WINDOW +
    " GROUP BY worker, device HAVING idle_usd + used_usd > 0 ORDER BY worker, device")

_CLICKHOUSE = (
    "SELECT substring(event_type, 12) AS table, sum(clickhouse_bytes) AS bytes, sum(rows_written) AS rows, "
    "sum(cost_usd) AS cost_usd FROM cost_minute WHERE startsWith(event_type, 'clickhouse:') AND " + _WINDOW +
    " GROUP BY table ORDER BY table")

_SERIES = (
    "SELECT minute, kind, tenant, model_version, sum(cost_usd) AS cost_usd, sum(cost_compute_usd) AS compute_usd, "
    "sum(recommendations) AS recommendations FROM cost_minute WHERE " + _WINDOW +
    " GROUP BY minute, kind, tenant, model_version ORDER BY minute, kind, tenant, model_version")

_ATTRIBUTION = (
    "SELECT model_version, count() AS attributed_clicks, countIf(action = 'purchase') AS attributed_purchases "
    "FROM attributed_clicks(start = {start:DateTime64(3, 'UTC')}, end = {end:DateTime64(3, 'UTC')}, "
    "window_s = {window_s:UInt32}, tenant = {tenant:String}) GROUP BY model_version ORDER BY model_version")

_AUDIT = (
    "SELECT (SELECT sum(cost_usd) FROM cost_events FINAL) AS raw_usd, "
    "(SELECT count() FROM cost_events FINAL) AS raw_rows, "
    "(SELECT count() FROM cost_events) AS stored_rows, "
    "(SELECT uniqExact(event_id) FROM cost_events) AS distinct_ids, "
    "(SELECT sum(cost_usd) FROM cost_minute) AS minute_usd, "
    "(SELECT sum(rows) FROM cost_minute) AS minute_rows, "
    "(SELECT sum(cost_usd) FROM cost_hour) AS hour_usd")


def _window(start: datetime, end: datetime) -> dict[str, object]:
    return {"start": start, "end": end}


def _dimension(dimension: str) -> str:
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension must be one of {DIMENSIONS}, got {dimension!r}")
    return dimension


def by_kind_query(start: datetime, end: datetime) -> tuple[str, dict]:
    """Cost by kind (workload | idle | shared) and component; recommendations and events."""
    return _BY_KIND, _window(start, end)


def workload_query(start: datetime, end: datetime) -> tuple[str, dict]:
    """Workload cost, recommendations, events, CPU and device seconds per (tenant, model version):
    the allocation's weights, and what the workload cost measured."""
    return _WORKLOAD, _window(start, end)


def latency_query(dimension: str, start: datetime, end: datetime, tenant: str | None = None) -> tuple[str, dict]:
    """Event-to-recommendation latency quantiles (p50, p95, p99) per version or tenant."""
    sql = _LATENCY.replace("{dim}", _dimension(dimension))
    params = _window(start, end)
    if tenant is not None:
        params["tenant"] = tenant
    return sql.replace("{tenant}", " AND tenant = {tenant:String}" if tenant is not None else ""), params


def capacity_query(start: datetime, end: datetime) -> tuple[str, dict]:
    """Per worker: idle cost, the compute its batches used, idle seconds (idle share's parts)."""
    return _CAPACITY, _window(start, end)


def clickhouse_query(start: datetime, end: datetime) -> tuple[str, dict]:
    """What the sink wrote to ClickHouse, by table: bytes (the server's part sizes), rows, cost."""
    return _CLICKHOUSE, _window(start, end)


def series_query(start: datetime, end: datetime) -> tuple[str, dict]:
    """Per minute, kind, tenant and version: cost, compute cost and recommendations (for plots)."""
    return _SERIES, _window(start, end)


def attribution_query(start: datetime, end: datetime, window_s: int,
                      tenant: str | None = None) -> tuple[str, dict]:
    """Attributed clicks and purchases per model version (last touch within window_s); the view
    filters the tenant before its join ('' = every tenant)."""
    return _ATTRIBUTION, {"start": start, "end": end, "window_s": window_s, "tenant": tenant or ""}


def audit_query() -> tuple[str, dict]:
    """Raw rows vs both rollups over all time: equal sums mean nothing was lost or doubled."""
    return _AUDIT, {}
