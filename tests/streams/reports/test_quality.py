"""Online quality: exact SQL; counts, rates and Wilson intervals from the real logs in chdb."""

from __future__ import annotations

import io
import json
import math
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from rich.console import Console

from reckon.streams.reports.html import render_html
from reckon.streams.reports.quality import bucket_seconds, quality_query, quality_rows
from reckon.streams.reports.report import ReportRequest, build_report
from reckon.streams.reports.text import render_text
from reckon.streams.sink.rows import Rows, recommendation_row, rows_from_message, write

T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return center - half, center + half


def test_quality_queries_are_exact_sql_with_bound_values() -> None:
    sql, params = quality_query("arm", T, T, 600, "acme")
    assert sql == (
        "SELECT model_version, arm, n_recs AS recommendations, n_clicked AS clicked, n_purchased AS purchased, "
        "n_clicked / n_recs AS ctr, reckon_wilson_low(n_clicked, n_recs) AS ctr_low, "
        "reckon_wilson_high(n_clicked, n_recs) AS ctr_high, n_purchased / n_recs AS purchase_rate, "
        "reckon_wilson_low(n_purchased, n_recs) AS purchase_rate_low, "
        "reckon_wilson_high(n_purchased, n_recs) AS purchase_rate_high "
        "FROM (SELECT model_version, arm, sum(recommendations) AS n_recs, sum(clicked) AS n_clicked, "
        "sum(purchased) AS n_purchased FROM online_quality(start = {start:DateTime64(3, 'UTC')}, "
        "end = {end:DateTime64(3, 'UTC')}, window_s = {window_s:UInt32}, tenant = {tenant:String}, "
        "bucket_s = {bucket_s:UInt32}) GROUP BY model_version, arm) ORDER BY model_version, arm")
    assert params == {"start": T, "end": T, "window_s": 600, "tenant": "acme", "bucket_s": 0}
    sql, params = quality_query("series", T, T, 600, bucket_s=300)
    assert "GROUP BY bucket, model_version, arm) ORDER BY bucket, model_version, arm" in sql
    assert params["tenant"] == "" and params["bucket_s"] == 300                      # every tenant
    with pytest.raises(ValueError, match="grouping"):
        quality_query("tenant; DROP TABLE x", T, T, 600)
    with pytest.raises(ValueError, match="bucket_s"):
        quality_query("version", T, T, 600, bucket_s=60)
    assert [bucket_seconds(h) for h in (0.5, 1, 5, 24, 24 * 30)] == [60, 60, 300, 3600, 86400]


@pytest.mark.integration
def test_attributed_ctr_and_purchase_rate_per_version_and_arm(clickhouse) -> None:
    tenant = f"q-{uuid.uuid4().hex[:8]}"
    start = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(microsecond=0)
    t0 = start.timestamp() + 60
    rows = Rows()
    recs, clicks = [], []

    def rec(n: int, version: str, arm: str, user: str, at: float, items: list[str]) -> None:
        recs.append(recommendation_row({"user_id": user, "items": items, "model_version": version, "arm": arm,
                                        "trigger_event_id": f"{tenant}-t{n}", "ts": at + 0.1, "trigger_ts": at,
                                        "tenant": tenant}))

    def click(n: int, user: str, at: float, item: str, action: str = "view") -> None:
        clicks.extend(rows_from_message("clicks_log", json.dumps(
            {"event_id": f"{tenant}-c{n}", "user_id": user, "item_id": item, "action": action, "ts": at,
             "tenant": tenant}).encode()))

    # v1 (primary): 40 recommendations to 40 users, 10 clicked (3 of them bought); one user
    # clicks two of its items: still one clicked recommendation.
    for i in range(40):
        rec(i, "v1", "primary", f"u{i}", t0 + i, ["a", "b", "c"])
        if i < 10:
            click(i, f"u{i}", t0 + i + 30, "b", "purchase" if i < 3 else "view")
    click(100, "u0", t0 + 40, "c")
    # v2 (challenger): 20 recommendations, 8 clicked; a later rec showing the item takes the credit
    for i in range(20):
        rec(200 + i, "v2", "challenger", f"w{i}", t0 + 5 * i, ["x", "y"])
        if i < 8:
            click(200 + i, f"w{i}", t0 + 5 * i + 2, "x")
    rec(300, "v1", "primary", "w0", t0 - 1, ["x"])            # older than w0's v2 recommendation: no credit
    # noise: a click on an unrecommended item, one after the window, one by another tenant's user
    click(400, "u20", t0 + 80, "zzz")
    click(401, "u21", t0 + 21 + 4000, "a")
    rows.add("recommendations_log", recs)
    rows.add("clicks_log", clicks)
    write(clickhouse, rows)

    end = start + timedelta(hours=1)
    by_arm = {(r["model_version"], r["arm"]): r for r in quality_rows(clickhouse, "arm", start, end, 1800, tenant)}
    v1, v2 = by_arm["v1", "primary"], by_arm["v2", "challenger"]
    assert (v1["recommendations"], v1["attributed_clicked"], v1["attributed_purchased"]) == (41, 10, 3)
    assert (v2["recommendations"], v2["attributed_clicked"], v2["attributed_purchased"]) == (20, 8, 0)
    assert v1["attributed_ctr"] == pytest.approx(10 / 41, abs=1e-6)
    assert v1["attributed_ctr_ci95"] == pytest.approx(list(wilson(10, 41)), abs=1e-6)
    assert v1["purchase_rate_ci95"] == pytest.approx(list(wilson(3, 41)), abs=1e-6)
    assert v2["purchase_rate"] == 0 and v2["purchase_rate_ci95"][0] == pytest.approx(0, abs=1e-9) \
        and v2["purchase_rate_ci95"][1] > 0                      # k = 0 still has an upper bound
    versions = quality_rows(clickhouse, "version", start, end, 1800, tenant)
    (version,) = [r for r in versions if r["model_version"] == "v1"]
    assert version["recommendations"] == 41 and version["attributed_ctr_ci95"] == v1["attributed_ctr_ci95"]
    series = quality_rows(clickhouse, "series", start, end, 1800, tenant, bucket_s=60)
    assert sum(r["recommendations"] for r in series) == 61 and len({r["bucket"] for r in series}) >= 2
    assert quality_rows(clickhouse, "arm", start, end, 1800, f"{tenant}-other") == []
    short = {r["model_version"]: r for r in quality_rows(clickhouse, "version", start, end, 10, tenant)}
    assert short["v1"]["attributed_clicked"] == 0 and short["v2"]["attributed_clicked"] == 8   # 30 s > 10 s window

    report = build_report(clickhouse, ReportRequest(hours=1, end=end, tenant=tenant, series=True))
    quality = report["online_quality"]
    assert {(r["model_version"], r["arm"]) for r in quality["by_arm"]} == {("v1", "primary"), ("v2", "challenger")}
    assert quality["bucket_s"] == 60 and quality["series"]
    text = io.StringIO()
    render_text(report, Console(file=text, width=220))
    assert "Online quality by model version" in text.getvalue() and "24.39 %" in text.getvalue()
    page = render_html(report)
    assert "Attributed click-through rate" in page and "Online quality by A/B arm" in page
    json.dumps(report)


@pytest.mark.integration
def test_two_users_events_with_one_id_are_attributed_each_to_its_own(clickhouse) -> None:
    # Users (within a tenant, or across tenants) may send events with the same id at the same
    # ms: two recommendations and two clicks, each click credited to its own user's.
    tenant = f"same-{uuid.uuid4().hex[:8]}"
    start = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(microsecond=0)
    t0 = start.timestamp() + 60
    rows = Rows()
    for user in ("u1", "u2"):
        rows.add("recommendations_log", [recommendation_row({
            "user_id": user, "items": ["a"], "model_version": "v1", "arm": "primary", "trigger_event_id": "t",
            "ts": t0 + 0.1, "trigger_ts": t0, "tenant": tenant})])
    rows.add("clicks_log", rows_from_message("clicks_log", json.dumps(
        {"event_id": "c", "user_id": "u1", "item_id": "a", "action": "view", "ts": t0 + 5, "tenant": tenant}).encode()))
    rows.add("clicks_log", rows_from_message("clicks_log", json.dumps(
        {"event_id": "c", "user_id": "u2", "item_id": "a", "action": "purchase", "ts": t0 + 5, "tenant": tenant}).encode()))
    assert write(clickhouse, rows).inserted == {"recommendations_log": 2, "clicks_log": 2}
    (row,) = quality_rows(clickhouse, "version", start, start + timedelta(hours=1), 1800, tenant)
    assert (row["recommendations"], row["attributed_clicked"], row["attributed_purchased"]) == (2, 2, 1)
    attributed = clickhouse.query(
        "SELECT model_version, count(), countIf(action = 'purchase') FROM attributed_clicks(start = {s:DateTime64(3, 'UTC')}, "
        "end = {e:DateTime64(3, 'UTC')}, window_s = 1800, tenant = {t:String}) GROUP BY model_version",
        {"s": start, "e": start + timedelta(hours=1), "t": tenant})
    assert attributed == [("v1", 2, 1)]
