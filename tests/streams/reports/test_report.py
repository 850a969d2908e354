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
from reckon.streams.costs.repricing import sync_prices
from reckon.streams.reports import queries as report_sql
from reckon.streams.reports.report import ReportRequest, build_report
from reckon.streams.reports.text import render_text
from reckon.streams.sink.rows import Rows, recommendation_row, rows_from_message, write, write_events

SHEET = PriceSheet.load(env={})
T = datetime(2026, 1, 1, tzinfo=timezone.utc)
WINDOW = "minute >= {start:DateTime64(3, 'UTC')} AND minute < {end:DateTime64(3, 'UTC')}"


def test_report_queries_are_exact_sql_with_bound_values() -> None:
    sql, params = report_sql.by_kind_query(T, T)
    assert sql == ("SELECT kind, sum(cost_compute_usd) AS compute_usd, sum(cost_storage_usd) AS storage_usd, "
                   "sum(cost_people_usd) AS people_usd, sum(cost_ops_usd) AS ops_usd, sum(cost_usd) AS cost_usd, "
                   "sum(recommendations) AS recommendations, sum(events) AS events FROM cost_minute WHERE "
                   + WINDOW + " GROUP BY kind ORDER BY kind")
    assert params == {"start": T, "end": T}
    assert report_sql.workload_query(T, T)[0] == (
        "SELECT tenant, model_version, sum(cost_usd) AS workload_usd, sum(recommendations) AS recommendations, "
        "sum(events) AS events, sum(cpu_seconds) AS cpu_seconds, sum(device_seconds) AS device_seconds "
        "FROM cost_minute WHERE kind = 'workload' AND " + WINDOW +
        " GROUP BY tenant, model_version ORDER BY tenant, model_version")
    sql, params = report_sql.latency_query("model_version", T, T, "acme")
    assert sql == ("SELECT model_version, quantilesArrayMerge(0.5, 0.95, 0.99)(latency_ms) AS latency_ms "
                   "FROM cost_minute WHERE kind = 'workload' AND " + WINDOW + " AND tenant = {tenant:String} "
                   "GROUP BY model_version ORDER BY model_version")
    assert params == {"start": T, "end": T, "tenant": "acme"}
    assert "tenant = " not in report_sql.latency_query("tenant", T, T)[0]
    assert report_sql.capacity_query(T, T)[0] == (
        "SELECT worker, device, sumIf(cost_usd, kind = 'idle') AS idle_usd, "
        "sumIf(cost_compute_usd, kind = 'workload') AS used_usd, sumIf(wall_seconds, kind = 'idle') AS idle_seconds "
        "FROM cost_minute WHERE kind IN ('idle', 'workload') AND " + WINDOW +
        " GROUP BY worker, device HAVING idle_usd + used_usd > 0 ORDER BY worker, device")
    assert report_sql.clickhouse_query(T, T)[0] == (
        "SELECT substring(event_type, 12) AS table, sum(clickhouse_bytes) AS bytes, sum(rows_written) AS rows, "
        "sum(cost_usd) AS cost_usd FROM cost_minute WHERE startsWith(event_type, 'clickhouse:') AND " + WINDOW +
        " GROUP BY table ORDER BY table")
    assert report_sql.series_query(T, T)[0] == (
        "SELECT minute, kind, tenant, model_version, sum(cost_usd) AS cost_usd, sum(cost_compute_usd) AS compute_usd, "
        "sum(recommendations) AS recommendations FROM cost_minute WHERE " + WINDOW +
        " GROUP BY minute, kind, tenant, model_version ORDER BY minute, kind, tenant, model_version")
    sql, params = report_sql.attribution_query(T, T, 600, "acme")
    assert sql == ("SELECT model_version, count() AS attributed_clicks, countIf(action = 'purchase') AS "
                   "attributed_purchases FROM attributed_clicks(start = {start:DateTime64(3, 'UTC')}, "
                   "end = {end:DateTime64(3, 'UTC')}, window_s = {window_s:UInt32}, tenant = {tenant:String}) "
                   "GROUP BY model_version ORDER BY model_version")
    assert params == {"start": T, "end": T, "tenant": "acme", "window_s": 600}
    assert report_sql.attribution_query(T, T, 600)[1]["tenant"] == ""            # every tenant
    with pytest.raises(ValueError, match="dimension"):
        report_sql.latency_query("worker; DROP TABLE x", T, T)


def test_report_request_round_trips_through_http_parameters() -> None:
    request = ReportRequest(hours=2.5, end=T, tenant="acme", series=True, sheet_version="s1",
                            attribution_window_s=600, summary=True, idle="separate")
    assert ReportRequest.from_query(request.to_query()) == request
    assert ReportRequest.from_query({}) == ReportRequest()
    assert ReportRequest.from_query({}, attribution_window_s=600).attribution_window_s == 600   # the worker's setting
    for bad in ({"hours": "-1"}, {"hours": "lots"}, {"sql": "SELECT 1"}, {"attribution_window_s": "0"},
                {"idle": "ignore"}, {"tenant": ""}, {"tenant": "a\x1b[31m"}, {"tenant": "t" * 129},
                {"end": "0001-01-01"}, {"end": "9999-12-31T23:59:59-01:00"},
                {"end": "0001-01-02", "hours": "9600"}, {"series": "yes"}, {"audit": "2"}):   # outside the calendar: were 500s on /costs
        with pytest.raises(ValueError):
            ReportRequest.from_query(bad)


def _batch(tenant: str, version: str, ts: float, recs: int, wall: float, worker: str = "w-report") -> dict:
    groups = new_groups()
    groups[group_key(tenant, version, "click")].events = recs
    groups[group_key(tenant, version, "click")].recommendations = recs
    groups[group_key(tenant, version, "click")].latencies_us = [10_000] * recs
    usage = Usage(wall_seconds=wall, device_seconds=wall / 2, cpu_seconds=wall, bytes_in=recs * 200,
                  bytes_out=recs * 300, state_bytes=recs * 1000)
    return cost_event(f"b-{uuid.uuid4().hex}", usage, groups, SHEET, worker, 2.0, ts=ts)


def _window_of_its_own(tag: str, days: int) -> datetime:
    """A start minute no other test writes to (idle and shared rows carry no tenant to filter on):
    `days` must be one no other test writes near (the budget alert test spreads its rows over
    days 7-10.5, the retrain tests use days 2 and 4, repricing 5 and 40)."""
    return (datetime.now(timezone.utc) - timedelta(days=days, minutes=zlib.crc32(tag.encode()) % 1000)).replace(
        second=0, microsecond=0)


def _usd(events, kind=None) -> Decimal:
    return sum((Decimal(e["cost"]["total"]) for e in events if kind in (None, e["kind"])), Decimal(0))


@pytest.mark.integration
def test_report_figures_equal_the_events_written(clickhouse) -> None:
    tag = uuid.uuid4().hex[:8]
    start = _window_of_its_own(tag, days=25)
    acc = IntervalAccountant(SHEET, Reserved(2, 2), f"w-{tag}", "cpu", interval_s=10,
                             started_at=start.timestamp())
    batches = [_batch(f"a-{tag}", "v1", start.timestamp() + 5 + 20 * i, 10, 0.4, f"w-{tag}") for i in range(6)]
    batches += [_batch(f"b-{tag}", "v2", start.timestamp() + 12 + 30 * i, 30, 1.0, f"w-{tag}") for i in range(3)]
    for event in sorted(batches, key=lambda e: e["ts"]):
        acc.observe(event)
    intervals = acc.close_all(now=start.timestamp() + 120)
    write_events(clickhouse, batches + intervals)
    everything = batches + intervals

    report = build_report(clickhouse, ReportRequest(hours=1, end=start + timedelta(minutes=30), series=True))
    totals = report["totals"]
    money = {k: Decimal(v) for k, v in totals.items() if k.endswith("_usd") and v is not None}
    assert money["total_cost_usd"] == _usd(everything)
    assert money["workload_cost_usd"] == _usd(batches)
    assert money["idle_cost_usd"] == _usd(intervals, "idle")
    assert money["shared_cost_usd"] == _usd(intervals, "shared")
    assert money["people_cost_usd"] + money["ops_cost_usd"] == money["shared_cost_usd"]    # their own lines
    assert money["attributed_cost_usd"] == money["total_cost_usd"] and money["unallocated_cost_usd"] == 0
    assert totals["recommendations"] == 150 and totals["events"] == 150
    assert money["workload_cost_per_1k_usd"] == (_usd(batches) * 1000 / 150).quantize(Decimal("1e-12"))
    assert money["attributed_cost_per_1k_usd"] == money["fully_loaded_cost_per_1k_usd"] == \
        (_usd(everything) * 1000 / 150).quantize(Decimal("1e-12"))
    # Idle share of paid capacity: idle over idle + the compute the batches used.
    used = sum((Decimal(e["cost"]["compute"]) for e in batches), Decimal(0))
    assert money["capacity_cost_usd"] == money["idle_cost_usd"] + used
    assert totals["idle_share"] == pytest.approx(float(money["idle_cost_usd"] / (money["idle_cost_usd"] + used)))
    assert totals["idle_share"] > 0.9                             # 2 vCPUs reserved, ~5 CPU-s used in 2 minutes

    # Per tenant and per version: no nameless row, and the rows add up to the total exactly.
    for rows, dim in ((report["by_tenant"], "tenant"), (report["by_version"], "model_version")):
        assert all(row[dim] for row in rows)
        assert sum(Decimal(row["attributed_cost_usd"]) for row in rows) == money["total_cost_usd"]
        assert sum(row["recommendations"] for row in rows) == 150
    versions = {row["model_version"]: row for row in report["by_version"]}
    v1_workload = _usd(batches[:6])
    assert Decimal(versions["v1"]["workload_cost_usd"]) == v1_workload
    # what that cost measured: each batch's CPU (its wall here) and device seconds (half of it)
    assert versions["v1"]["workload_cpu_seconds"] == pytest.approx(6 * 0.4)
    assert versions["v2"]["workload_device_seconds"] == pytest.approx(3 * 1.0 / 2)
    share = v1_workload / _usd(batches)                           # idle and shared follow workload cost
    assert Decimal(versions["v1"]["attributed_cost_usd"]) == pytest.approx(v1_workload + share * (
        money["idle_cost_usd"] + money["shared_cost_usd"]), abs=Decimal("1e-11"))
    assert Decimal(versions["v1"]["attributed_cost_per_1k_usd"]) == \
        (Decimal(versions["v1"]["attributed_cost_usd"]) * 1000 / 60).quantize(Decimal("1e-12"))
    assert versions["v1"]["latency_ms"]["p50"] == pytest.approx(10.0)
    assert {row["kind"] for row in report["by_component"]} == {"workload", "idle", "shared"}
    assert sum(Decimal(r["cost_usd"]) for r in report["by_component"]) == _usd(everything)
    series = report["series"]
    assert sum(p["recommendations"] for p in series["by_version"]) == 150
    assert {p["tenant"] for p in series["by_tenant"]} == {f"a-{tag}", f"b-{tag}"}
    assert all(0 <= p["idle_share"] <= 1 for p in series["idle_share"] if p["idle_share"] is not None)
    (idle,) = [row for row in report["idle"] if row["worker"] == f"w-{tag}"]
    assert Decimal(idle["idle_cost_usd"]) == _usd(intervals, "idle") and idle["idle_share"] == totals["idle_share"]

    summary = build_report(clickhouse, ReportRequest(hours=1, end=start + timedelta(minutes=30), summary=True))
    assert summary == {k: report[k] for k in ("window", "currency", "totals")}

    # One tenant: its own workload and its shares; idle share is the workers', unchanged.
    one = build_report(clickhouse, ReportRequest(hours=1, end=start + timedelta(minutes=30), tenant=f"a-{tag}"))
    (row,) = one["by_tenant"]
    assert one["totals"]["total_cost_usd"] == one["totals"]["attributed_cost_usd"] == row["attributed_cost_usd"]
    assert one["totals"]["recommendations"] == 60 and one["totals"]["idle_share"] == totals["idle_share"]
    assert [v["model_version"] for v in one["by_version"]] == ["v1"]

    # Idle kept separate: the rows add up to the total less idle, which stays unallocated.
    apart = build_report(clickhouse, ReportRequest(hours=1, end=start + timedelta(minutes=30), idle="separate"))
    rows_total = sum(Decimal(r["attributed_cost_usd"]) for r in apart["by_tenant"])
    assert rows_total == money["total_cost_usd"] - money["idle_cost_usd"]
    assert Decimal(apart["totals"]["unallocated_cost_usd"]) == money["idle_cost_usd"]
    assert apart["totals"]["fully_loaded_cost_per_1k_usd"] == totals["fully_loaded_cost_per_1k_usd"]
    json.dumps(report)                                                 # JSON-able as it stands

    # Re-priced under the sheet they were priced with: each kind comes back (to allocation's rounding).
    sync_prices(clickhouse, SHEET)
    again = build_report(clickhouse, ReportRequest(hours=1, end=start + timedelta(minutes=30), summary=False,
                                                   sheet_version=SHEET.version))["reprice"]["by_version"]
    assert {(r["kind"], r["model_version"]) for r in again} == {("idle", ""), ("shared", ""), ("workload", "v1"),
                                                                 ("workload", "v2")}
    assert all(abs(Decimal(r["stored_usd"]) - Decimal(r["repriced_usd"])) < Decimal("1e-10") for r in again)
    assert all(Decimal(r["change_usd"]) == 0 and r["cost_rows"] > 0 for r in again)    # that rounding is no change


@pytest.mark.integration
def test_a_window_without_traffic_leaves_its_cost_unallocated(clickhouse) -> None:
    tag = uuid.uuid4().hex[:8]
    start = _window_of_its_own(tag, days=12)
    acc = IntervalAccountant(SHEET, Reserved(1, 1), f"w-{tag}", "cpu", interval_s=10, started_at=start.timestamp())
    write_events(clickhouse, acc.close_all(now=start.timestamp() + 30))
    report = build_report(clickhouse, ReportRequest(hours=0.5, end=start + timedelta(minutes=10)))
    totals = report["totals"]
    assert report["by_tenant"] == report["by_version"] == []
    assert totals["unallocated_cost_usd"] == totals["total_cost_usd"] != _money(0)
    assert totals["attributed_cost_per_1k_usd"] is None and totals["idle_share"] == 1.0


def test_text_fits_80_columns_with_human_names() -> None:
    report = _sample_report()
    out = io.StringIO()
    render_text(report, Console(file=out, width=80, color_system=None))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text                                             # no header or cell cut short
    for label in ("workload cost per 1k", "attributed cost per 1k", "fully loaded cost per 1k", "idle share",
                  "people", "ops", "By model version", "By tenant", "latency", "Written to ClickHouse",
                  "Online quality by A/B arm", "challenger", "43.04 % [38.93, 47.26]"):
        assert label in text, label
    assert "_usd" not in text and "cost_per" not in text                 # no raw JSON keys
    assert "$0.00369" in text                                          # money: a unit, three significant digits
    wide = io.StringIO()
    render_text(report, Console(file=wide, width=200, color_system=None), wide=True)
    assert "fully loaded" in wide.getvalue() and "p95 ms" in wide.getvalue()      # the columns 80 leaves out


def test_text_prints_names_from_the_data_as_they_are() -> None:
    """Rich read tenant ids as markup: `[/]` crashed `reckon costs`, `[link=...]` made a live link."""
    report = _sample_report()
    hostile = "[/]acme[link=https://evil.example]x[/link]"
    report["window"]["tenant"] = hostile
    report["by_tenant"] = [{**report["by_tenant"][0], "tenant": hostile}]
    out = io.StringIO()
    render_text(report, Console(file=out, width=200, color_system=None))
    text = out.getvalue()       # the tags still there: read as text, not as markup
    assert f"tenant {hostile}" in text and text.count(hostile) == 2


def _money(value: float) -> str:
    return f"{Decimal(value).quantize(Decimal('1e-12')):f}"


def _sample_report() -> dict:
    """A report as build_report returns it, with the figures of a short demo."""
    row = {"workload_cost_usd": "0.000011400000", "idle_cost_usd": "0.001049100000",
           "shared_cost_usd": "0.022617600000", "attributed_cost_usd": "0.003693089932", "recommendations": 1234,
           "events": 2990, "workload_cost_per_1k_usd": "0.000009238250", "attributed_cost_per_1k_usd":
           "0.002992779524", "fully_loaded_cost_per_1k_usd": "0.002992779524",
           "latency_ms": {"p50": 6120.5, "p95": 9000.0, "p99": 9400.2}}
    version = {**row, "model_version": "20261202-075436-44998d34", "attributed_clicks": 12,
               "attributed_purchases": 1, "attributed_cost_per_click_usd": "0.000307757494",
               "attributed_cost_per_purchase_usd": "0.003693089932"}
    totals = {"total_cost_usd": "0.003693089932", "workload_cost_usd": "0.000011400000",
              "idle_cost_usd": "0.001049100000", "shared_cost_usd": "0.002632589932",
              "people_cost_usd": "0.002322873470", "ops_cost_usd": "0.000309716462",
              "attributed_cost_usd": "0.003693089932", "unallocated_cost_usd": "0.000000000000",
              "recommendations": 1234, "events": 2990, "workload_cost_per_1k_usd": "0.000009238250",
              "attributed_cost_per_1k_usd": "0.002992779524", "fully_loaded_cost_per_1k_usd": "0.002992779524",
              "capacity_cost_usd": "0.001060500000", "idle_share": 0.989}
    quality = {"recommendations": 12_345, "attributed_ctr": 0.4304, "attributed_ctr_ci95": [0.3893, 0.4726],
               "purchase_rate": 0.0148, "purchase_rate_ci95": [0.0075, 0.029]}
    online = {"by_version": [{**quality, "model_version": version["model_version"]}],
              "by_arm": [{**quality, "model_version": version["model_version"], "arm": arm}
                         for arm in ("primary", "challenger")]}
    return {"window": {"start": "2026-12-02T07:00:00+00:00", "end": "2026-12-03T07:00:00+00:00", "hours": 24.0,
                       "tenant": None, "idle": "shared", "attribution_window_s": 1800},
            "currency": "USD", "totals": totals, "by_version": [version], "online_quality": online,
            "by_tenant": [{**row, "tenant": "acme"}],
            "by_component": [{"kind": k, "compute_usd": "0.000010000000", "storage_usd": "0.000001400000",
                              "people_usd": "0.002322873470", "ops_usd": "0.000309716462",
                              "cost_usd": "0.002643989932"} for k in ("workload", "idle", "shared")],
            "idle": [{"worker": "demo-worker-1", "device": "cpu", "idle_cost_usd": "0.001049100000",
                      "capacity_cost_usd": "0.001060500000", "idle_seconds": 41.2, "idle_share": 0.989}],
            "clickhouse": [{"table": "recommendations_log", "bytes": 52_000, "rows": 1234,
                            "cost_usd": "0.000002600000"}],
            "alerts": [{"alert_id": "a1", "ts": "2026-12-02T07:10:00+00:00", "kind": "anomaly",
                        "metric": "workload_cost_per_1k_usd", "tenant": "acme", "model_version": "v1",
                        "severity": "critical", "observed": "0.5", "expected": "0.1", "window": "60m",
                        "data_ts": "2026-12-02T07:09:00+00:00"}]}


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
    v1_cost = Decimal(versions["v1"]["attributed_cost_usd"])
    assert Decimal(versions["v1"]["attributed_cost_per_click_usd"]) == (v1_cost / 2).quantize(Decimal("1e-12"))
    assert Decimal(versions["v1"]["attributed_cost_per_purchase_usd"]) == v1_cost
    short = build_report(clickhouse, ReportRequest(hours=1, tenant=tenant, attribution_window_s=12))
    assert {r["model_version"]: r["attributed_clicks"] for r in short["by_version"]} == {"v1": 1, "v2": 1}


def test_a_long_name_folds_and_leaves_every_number_whole() -> None:
    # A 128-character tenant (the contract's limit) cut every number of "By tenant" to "…".
    report = _sample_report()
    long_name = "t" * 120 + "-acme-eu"
    report["by_tenant"] = [{**report["by_tenant"][0], "tenant": long_name}, *report["by_tenant"][1:]]
    out = io.StringIO()
    render_text(report, Console(file=out, width=80, color_system=None))
    text = out.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert "-acme-eu" in text                                     # the whole name, over lines of its column
