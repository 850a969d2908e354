"""The cost report: exact SQL, figures equal to the cost events written, attribution, renderers."""

from __future__ import annotations

import io
import json
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from rich.console import Console

from reckon.streams.costs.idle import IntervalAccountant, Reserved
from reckon.streams.costs.meter import cost_event, group_key, new_groups
from reckon.streams.costs.pricing import PriceSheet, Usage
from reckon.streams.reports import queries as report_sql
from reckon.streams.reports.html import render_html
from reckon.streams.reports.report import ReportRequest, build_report, render_text
from reckon.streams.sink.rows import Rows, recommendation_row, rows_from_message, write, write_events

SHEET = PriceSheet.load(env={})
T = datetime(2026, 1, 1, tzinfo=timezone.utc)
WINDOW = "minute >= {start:DateTime64(3, 'UTC')} AND minute < {end:DateTime64(3, 'UTC')}"


def test_report_queries_are_exact_sql_with_bound_values() -> None:
    sql, params = report_sql.by_kind_query(T, T, "acme")
    assert sql == ("SELECT kind, sum(cost_compute_usd) AS compute_usd, sum(cost_storage_usd) AS storage_usd, "
                   "sum(cost_people_usd) AS people_usd, sum(cost_ops_usd) AS ops_usd, sum(cost_usd) AS cost_usd, "
                   "sum(recommendations) AS recommendations, sum(events) AS events FROM cost_minute WHERE "
                   + WINDOW + " AND tenant = {tenant:String} GROUP BY kind ORDER BY kind")
    assert params == {"start": T, "end": T, "tenant": "acme"}
    sql, params = report_sql.by_dimension_query("model_version", T, T)
    assert sql == ("SELECT model_version, sumIf(cost_usd, kind = 'workload') AS workload_usd, "
                   "sumIf(cost_usd, kind = 'shared') AS shared_usd, sum(cost_usd) AS attributed_usd, "
                   "sum(recommendations) AS recommendations, sum(events) AS events, "
                   "quantilesArrayMerge(0.5, 0.95, 0.99)(latency_ms) AS latency_ms FROM cost_minute "
                   "WHERE kind != 'idle' AND " + WINDOW + " GROUP BY model_version ORDER BY attributed_usd DESC")
    assert params == {"start": T, "end": T}
    sql, params = report_sql.attribution_query(T, T, 600, "acme")
    assert sql == ("SELECT model_version, sum(attributed_clicks) AS attributed_clicks, "
                   "sum(attributed_purchases) AS attributed_purchases FROM cost_per_attributed_click("
                   "start = {start:DateTime64(3, 'UTC')}, end = {end:DateTime64(3, 'UTC')}, "
                   "window_s = {window_s:UInt32}, tenant = {tenant:String}) "
                   "GROUP BY model_version ORDER BY model_version")
    assert params == {"start": T, "end": T, "tenant": "acme", "window_s": 600}
    assert report_sql.attribution_query(T, T, 600)[1]["tenant"] == ""            # every tenant
    assert report_sql.series_query(T, T)[0] == (
        "SELECT minute, model_version, sum(cost_usd) AS cost_usd, sum(recommendations) AS recommendations "
        "FROM cost_minute WHERE kind != 'idle' AND " + WINDOW + " GROUP BY minute, model_version "
        "ORDER BY minute, model_version")
    assert report_sql.idle_query(T, T)[0] == (
        "SELECT worker, device, sumIf(cost_usd, kind = 'idle') AS idle_usd, sum(cost_usd) AS total_usd, "
        "sumIf(wall_seconds, kind = 'idle') AS idle_seconds FROM cost_minute WHERE " + WINDOW +
        " GROUP BY worker, device ORDER BY idle_usd DESC")
    with pytest.raises(ValueError, match="dimension"):
        report_sql.by_dimension_query("worker; DROP TABLE x", T, T)


def test_report_request_round_trips_through_http_parameters() -> None:
    request = ReportRequest(hours=2.5, end=T, tenant="acme", series=True, sheet_version="s1",
                            attribution_window_s=600, summary=True)
    assert ReportRequest.from_query(request.to_query()) == request
    assert ReportRequest.from_query({}) == ReportRequest()
    for bad in ({"hours": "-1"}, {"hours": "lots"}, {"sql": "SELECT 1"}, {"attribution_window_s": "0"}):
        with pytest.raises(ValueError):
            ReportRequest.from_query(bad)


def _batch(tenant: str, version: str, ts: float, recs: int, wall: float) -> dict:
    groups = new_groups()
    groups[group_key(tenant, version, "click")].events = recs
    groups[group_key(tenant, version, "click")].recommendations = recs
    groups[group_key(tenant, version, "click")].latencies_ms = [10.0] * recs
    usage = Usage(wall_seconds=wall, device_seconds=wall / 2, cpu_seconds=wall, bytes_in=recs * 200,
                  bytes_out=recs * 300, state_bytes=recs * 1000)
    return cost_event(f"b-{uuid.uuid4().hex}", usage, groups, SHEET, "w-report", 2.0, ts=ts)


@pytest.mark.integration
def test_report_figures_equal_the_events_written(clickhouse) -> None:
    tag = uuid.uuid4().hex[:8]
    # A window of our own (reports' idle rows carry no tenant to filter on).
    start = (datetime.now(timezone.utc) - timedelta(days=9, minutes=zlib.crc32(tag.encode()) % 1000)).replace(
        second=0, microsecond=0)
    acc = IntervalAccountant(SHEET, Reserved(2, 2), f"w-{tag}", "cpu", interval_s=10,
                             started_at=start.timestamp())
    batches = [_batch(f"a-{tag}", "v1", start.timestamp() + 5 + 20 * i, 10, 0.4) for i in range(6)]
    batches += [_batch(f"b-{tag}", "v2", start.timestamp() + 12 + 30 * i, 30, 1.0) for i in range(3)]
    for event in sorted(batches, key=lambda e: e["ts"]):
        acc.observe(event)
    intervals = acc.close_all(now=start.timestamp() + 120)
    write_events(clickhouse, batches + intervals)

    report = build_report(clickhouse, ReportRequest(hours=1, end=start + timedelta(minutes=30), series=True))

    def usd(events, kind=None) -> Decimal:
        return sum((Decimal(e["cost"]["total"]) for e in events if kind in (None, e["kind"])), Decimal(0))

    everything = batches + intervals
    totals = report["totals"]
    assert Decimal(totals["cost_usd"]) == usd(everything)
    assert Decimal(totals["workload_usd"]) == usd(batches)
    assert Decimal(totals["idle_usd"]) == usd(intervals, "idle")
    assert Decimal(totals["shared_usd"]) == usd(intervals, "shared")
    assert Decimal(totals["workload_usd"]) + Decimal(totals["idle_usd"]) + Decimal(totals["shared_usd"]) \
        == Decimal(totals["cost_usd"])
    assert totals["recommendations"] == 150
    assert report["idle_share"] == pytest.approx(float(usd(intervals, "idle") / usd(everything)))
    versions = {row["model_version"]: row for row in report["by_version"]}
    shared_v1 = sum((Decimal(line["cost"]["total"]) for e in intervals if e["kind"] == "shared"
                     for line in e["lines"] if line["model_version"] == "v1"), Decimal(0))
    assert Decimal(versions["v1"]["cost_usd"]) == usd(batches[:6]) + shared_v1
    assert Decimal(versions["v1"]["cost_per_1k_recs_usd"]) == \
        (Decimal(versions["v1"]["cost_usd"]) * 1000 / 60).quantize(Decimal("1e-12"))
    assert versions["v1"]["latency_ms"]["p50"] == pytest.approx(10.0)
    assert {row["kind"] for row in report["by_component"]} == {"workload", "idle", "shared"}
    assert sum(Decimal(r["cost_usd"]) for r in report["by_component"]) == usd(everything)
    assert sum(int(p["recommendations"]) for p in report["series"]) == 150
    (idle,) = [row for row in report["idle"] if row["worker"] == f"w-{tag}"]
    assert Decimal(idle["idle_usd"]) == usd(intervals, "idle")

    summary = build_report(clickhouse, ReportRequest(hours=1, end=start + timedelta(minutes=30), summary=True))
    assert summary == {k: report[k] for k in ("window", "totals", "idle_share")}

    text = io.StringIO()
    render_text(report, Console(file=text, width=200))
    assert "By model version" in text.getvalue() and "idle share" in text.getvalue()
    alert = {"alert_id": "a1", "ts": start.isoformat(), "kind": "anomaly", "metric": "cost_usd",
             "tenant": f"a-{tag}", "model_version": "v1", "severity": "critical", "observed": "0.5",
             "expected": "0.1", "window": "60m", "data_ts": (start + timedelta(minutes=1)).isoformat()}
    page = render_html({**report, "alerts": [alert]})
    assert page.startswith("<!DOCTYPE html>") and "plotly" in page.lower()
    assert "anomaly: cost_usd" in page                                 # the alert is marked on the plots
    assert "<script src=" not in page and len(page) > 1_000_000       # plotly.js inline: works offline
    json.dumps(report)                                                 # JSON-able as it stands


@pytest.mark.integration
def test_cost_per_attributed_click_and_purchase(clickhouse) -> None:
    tenant = f"attr-{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc).replace(microsecond=0)
    t0 = (now - timedelta(minutes=20)).timestamp()

    def rec(version: str, at: float, items: list[str], user: str = "u1") -> list[object]:
        return recommendation_row({"user_id": user, "items": items, "model_version": version,
                                   "trigger_event_id": f"e-{at}", "ts": at + 0.05, "trigger_ts": at,
                                   "tenant": tenant})

    def click(event_id: str, at: float, item: str, action: str = "view", user: str = "u1") -> bytes:
        return json.dumps({"event_id": f"{tenant}-{event_id}", "user_id": user, "item_id": item, "action": action,
                           "ts": at, "tenant": tenant}).encode()

    rows = Rows()
    rows.add("recommendations_log", [rec("v1", t0, ["a", "b"]), rec("v2", t0 + 300, ["b"])])
    for raw in (click("c1", t0 + 10, "a"),                    # v1
                click("c2", t0 + 20, "b", "purchase"),        # v1 (v2's rec comes later)
                click("c3", t0 + 310, "b", "purchase"),       # v2: the latest rec showing b
                click("c4", t0 + 15, "z"),                    # not recommended
                click("c5", t0 + 15, "a", user="u2"),         # someone else
                click("c6", t0 - 5, "a")):                    # before the recommendation
        rows.add("clicks_log", rows_from_message("clicks_log", raw))
    write(clickhouse, rows)
    write_events(clickhouse, [_batch(tenant, "v1", t0, 20, 0.5), _batch(tenant, "v2", t0 + 300, 20, 1.5)])

    report = build_report(clickhouse, ReportRequest(hours=1, tenant=tenant, attribution_window_s=1800))
    versions = {row["model_version"]: row for row in report["by_version"]}
    assert (versions["v1"]["attributed_clicks"], versions["v1"]["attributed_purchases"]) == (2, 1)
    assert (versions["v2"]["attributed_clicks"], versions["v2"]["attributed_purchases"]) == (1, 1)
    v1_cost = Decimal(versions["v1"]["cost_usd"])
    assert Decimal(versions["v1"]["cost_per_attributed_click_usd"]) == (v1_cost / 2).quantize(Decimal("1e-12"))
    assert Decimal(versions["v1"]["cost_per_attributed_purchase_usd"]) == v1_cost
    short = build_report(clickhouse, ReportRequest(hours=1, tenant=tenant, attribution_window_s=12))
    assert {r["model_version"]: r["attributed_clicks"] for r in short["by_version"]} == {"v1": 1, "v2": 1}
