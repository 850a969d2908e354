"""The cost report's queries: pure functions returning (sql, params), every value bound.

All read the per-minute rollup over [start, end) except attribution (the logs, through
the `cost_per_attributed_click` view) and the audit (raw rows vs both rollups). SQL text
is built only from the constants below (slots filled with str.replace from allow-listed
fragments, never with values), so each query is deterministic and tested by exact string
comparison.
"""

from __future__ import annotations

from datetime import datetime

DIMENSIONS = ("model_version", "tenant")   # what `by_dimension_query` may group by

_WINDOW = "minute >= {start:DateTime64(3, 'UTC')} AND minute < {end:DateTime64(3, 'UTC')}"
_TENANT = " AND tenant = {tenant:String}"

_BY_KIND = (
    "SELECT kind, sum(cost_compute_usd) AS compute_usd, sum(cost_storage_usd) AS storage_usd, "
    "sum(cost_people_usd) AS people_usd, sum(cost_ops_usd) AS ops_usd, sum(cost_usd) AS cost_usd, "
    "sum(recommendations) AS recommendations, sum(events) AS events "
    "FROM cost_minute WHERE " + _WINDOW + "{tenant} GROUP BY kind ORDER BY kind")

_BY_DIMENSION = (
    "SELECT {dim}, sumIf(cost_usd, kind = 'workload') AS workload_usd, "
    "sumIf(cost_usd, kind = 'shared') AS shared_usd, sum(cost_usd) AS attributed_usd, "
    "sum(recommendations) AS recommendations, sum(events) AS events, "
    "quantilesArrayMerge(0.5, 0.95, 0.99)(latency_ms) AS latency_ms "
    "FROM cost_minute WHERE kind != 'idle' AND " + _WINDOW + "{tenant} GROUP BY {dim} ORDER BY attributed_usd DESC")

_IDLE = (
    "SELECT worker, device, sumIf(cost_usd, kind = 'idle') AS idle_usd, sum(cost_usd) AS total_usd, "
    "sumIf(wall_seconds, kind = 'idle') AS idle_seconds FROM cost_minute WHERE " + _WINDOW +
    " GROUP BY worker, device ORDER BY idle_usd DESC")

_ATTRIBUTION = (
    "SELECT model_version, sum(attributed_clicks) AS attributed_clicks, "
    "sum(attributed_purchases) AS attributed_purchases "
    "FROM cost_per_attributed_click(start = {start:DateTime64(3, 'UTC')}, end = {end:DateTime64(3, 'UTC')}, "
    "window_s = {window_s:UInt32}, tenant = {tenant:String}) GROUP BY model_version ORDER BY model_version")

_SERIES = (
    "SELECT minute, model_version, sum(cost_usd) AS cost_usd, sum(recommendations) AS recommendations "
    "FROM cost_minute WHERE kind != 'idle' AND " + _WINDOW + "{tenant} "
    "GROUP BY minute, model_version ORDER BY minute, model_version")

_AUDIT = (
    "SELECT (SELECT sum(cost_usd) FROM cost_events FINAL) AS raw_usd, "
    "(SELECT count() FROM cost_events FINAL) AS raw_rows, "
    "(SELECT count() FROM cost_events) AS stored_rows, "
    "(SELECT uniqExact(event_id) FROM cost_events) AS distinct_ids, "
    "(SELECT sum(cost_usd) FROM cost_minute) AS minute_usd, "
    "(SELECT sum(rows) FROM cost_minute) AS minute_rows, "
    "(SELECT sum(cost_usd) FROM cost_hour) AS hour_usd")


def _params(start: datetime, end: datetime, tenant: str | None) -> dict[str, object]:
    params: dict[str, object] = {"start": start, "end": end}
    if tenant is not None:
        params["tenant"] = tenant
    return params


def _tenant(tenant: str | None) -> str:
    return _TENANT if tenant is not None else ""


def by_kind_query(start: datetime, end: datetime, tenant: str | None = None) -> tuple[str, dict]:
    """Cost by kind (workload | idle | shared) and component."""
    return _BY_KIND.replace("{tenant}", _tenant(tenant)), _params(start, end, tenant)


def by_dimension_query(dimension: str, start: datetime, end: datetime,
                       tenant: str | None = None) -> tuple[str, dict]:
    """Attributed cost (workload + shared), recommendations and latency per version or tenant."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension must be one of {DIMENSIONS}, got {dimension!r}")
    sql = _BY_DIMENSION.replace("{dim}", dimension).replace("{tenant}", _tenant(tenant))
    return sql, _params(start, end, tenant)


def idle_query(start: datetime, end: datetime) -> tuple[str, dict]:
    """Idle cost and share per worker and device (idle rows carry no tenant)."""
    return _IDLE, _params(start, end, None)


def attribution_query(start: datetime, end: datetime, window_s: int,
                      tenant: str | None = None) -> tuple[str, dict]:
    """Attributed clicks and purchases per model version (last touch within window_s); the view
    filters the tenant before its join ('' = every tenant)."""
    return _ATTRIBUTION, {"start": start, "end": end, "window_s": window_s, "tenant": tenant or ""}


def series_query(start: datetime, end: datetime, tenant: str | None = None) -> tuple[str, dict]:
    """Per-minute attributed cost and recommendations per version (for plots)."""
    return _SERIES.replace("{tenant}", _tenant(tenant)), _params(start, end, tenant)


def audit_query() -> tuple[str, dict]:
    """Raw rows vs both rollups over all time: equal sums mean nothing was lost or doubled."""
    return _AUDIT, {}
