"""Online quality per model version and A/B arm, beside its cost: attributed click-through
rate and purchase rate with 95 % Wilson intervals, from the logs (recommendations_log,
clicks_log) through the `online_quality` view and the `reckon_wilson_*` functions
(infra/clickhouse/0011-0013), which Grafana reads too, so every place shows the same numbers.

What they mean: of the recommendations published in the window (counted once each, by
trigger time), the share credited with at least one attributed click (attributed CTR) and
with at least one attributed purchase (attributed purchase rate), under the last-touch
attribution of the cost per attributed click. The interval says how far the rate may be
from the truth given how many recommendations it rests on.

Queries are pure functions returning (sql, params): values bound, SQL built from the
constants below only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from reckon.streams.clickhouse.client import ClickHouse

GROUPINGS = {                       # name -> the columns grouped by (and ordered by)
    "version": "model_version",
    "arm": "model_version, arm",
    "series": "bucket, model_version, arm",
}

# The counts summed over the grouping, then the rates (the inner names differ from the
# outer ones: ClickHouse reads `sum(clicked) AS clicked` as a cyclic alias).
_SQL = (
    "SELECT {keys}, n_recs AS recommendations, n_clicked AS clicked, n_purchased AS purchased, "
    "n_clicked / n_recs AS ctr, reckon_wilson_low(n_clicked, n_recs) AS ctr_low, "
    "reckon_wilson_high(n_clicked, n_recs) AS ctr_high, n_purchased / n_recs AS purchase_rate, "
    "reckon_wilson_low(n_purchased, n_recs) AS purchase_rate_low, "
    "reckon_wilson_high(n_purchased, n_recs) AS purchase_rate_high "
    "FROM (SELECT {keys}, sum(recommendations) AS n_recs, sum(clicked) AS n_clicked, sum(purchased) AS n_purchased "
    "FROM online_quality(start = {start:DateTime64(3, 'UTC')}, end = {end:DateTime64(3, 'UTC')}, "
    "window_s = {window_s:UInt32}, tenant = {tenant:String}, bucket_s = {bucket_s:UInt32}) "
    "GROUP BY {keys}) ORDER BY {keys}")


def quality_query(grouping: str, start: datetime, end: datetime, window_s: int, tenant: str | None = None,
                  bucket_s: int = 0) -> tuple[str, dict]:
    """Online quality grouped by "version", "arm" (version and arm) or "series" (time bucket of
    `bucket_s` seconds, version and arm); tenant None = every tenant."""
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {sorted(GROUPINGS)}, got {grouping!r}")
    if (grouping == "series") != (bucket_s > 0):
        raise ValueError("bucket_s > 0 goes with the series grouping, and only with it")
    return (_SQL.replace("{keys}", GROUPINGS[grouping]),
            {"start": start, "end": end, "window_s": window_s, "tenant": tenant or "", "bucket_s": bucket_s})


def bucket_seconds(hours: float) -> int:
    """Series resolution for a window: about 12 to 60 points."""
    for seconds in (60, 300, 900, 3600, 4 * 3600, 86400):
        if hours * 3600 / seconds <= 60:
            return seconds
    return 7 * 86400


def quality_rows(ch: ClickHouse, grouping: str, start: datetime, end: datetime, window_s: int,
                 tenant: str | None = None, bucket_s: int = 0) -> list[dict]:
    """The query's rows as JSON-able dicts: counts, rates and their [low, high] intervals."""
    out = []
    for r in ch.query_dicts(*quality_query(grouping, start, end, window_s, tenant, bucket_s),
                            tag=f"quality:{grouping}"):
        row = {key: r[key] for key in GROUPINGS[grouping].split(", ")}
        if "bucket" in row:
            row["bucket"] = row["bucket"].isoformat()
        row |= {"recommendations": int(r["recommendations"]), "attributed_clicked": int(r["clicked"]),
                "attributed_purchased": int(r["purchased"]),
                "attributed_ctr": _rate(r["ctr"]), "attributed_ctr_ci95": [_rate(r["ctr_low"]), _rate(r["ctr_high"])],
                "purchase_rate": _rate(r["purchase_rate"]),
                "purchase_rate_ci95": [_rate(r["purchase_rate_low"]), _rate(r["purchase_rate_high"])]}
        out.append(row)
    return out


def _rate(value: object) -> float | None:
    return None if value is None or value != value else round(float(value), 6)  # type: ignore[arg-type]


# The cost figures shown beside quality, read from the report's per-version cost rows
# (streams/costs/figures.py names them).
COST_COLUMNS = (("attributed_cost_per_1k_usd", "attributed\nper 1k"),
                ("attributed_cost_per_click_usd", "attributed\nper click"))
VERSION_COLUMNS = ("model version", "recs", "attributed CTR", "purchase rate", *(label for _, label in COST_COLUMNS))
ARM_COLUMNS = ("model version", "arm", "recs", "attributed CTR", "purchase rate")
VERSION_TITLE = "Online quality by model version (95 % Wilson interval)"
ARM_TITLE = "Online quality by A/B arm"


def percent(rate: float | None, interval: list | None = None) -> str:
    """"4.31 % [3.90, 4.75]": a rate and its 95 % interval, in percent."""
    if rate is None:
        return "-"
    text = f"{rate * 100:.2f} %"
    if interval and None not in interval:
        text += f" [{interval[0] * 100:.2f}, {interval[1] * 100:.2f}]"
    return text


def version_cells(report: dict, money: Callable[[object], str]) -> list[dict[str, str]]:
    """Per version, as displayed (keys are VERSION_COLUMNS): its online quality and, from the
    cost rows, its unit costs."""
    costs = {row["model_version"]: row for row in report.get("by_version", [])}
    return [{"model version": row["model_version"] or "(unattributed)",
             "recs": f"{row['recommendations']:,}",
             "attributed CTR": percent(row["attributed_ctr"], row["attributed_ctr_ci95"]),
             "purchase rate": percent(row["purchase_rate"], row["purchase_rate_ci95"]),
             **{label: money(costs.get(row["model_version"], {}).get(key)) for key, label in COST_COLUMNS}}
            for row in report.get("online_quality", {}).get("by_version", [])]


def arm_cells(report: dict) -> list[dict[str, str]]:
    """Per version and A/B arm, as displayed (keys are ARM_COLUMNS)."""
    return [{"model version": row["model_version"], "arm": row["arm"] or "(not recorded)",
             "recs": f"{row['recommendations']:,}",
             "attributed CTR": percent(row["attributed_ctr"], row["attributed_ctr_ci95"]),
             "purchase rate": percent(row["purchase_rate"], row["purchase_rate_ci95"])}
            for row in report.get("online_quality", {}).get("by_arm", [])]
