"""The report's tables, defined once for text (text.py) and HTML (html.py): a title, the rows,
and columns of (header, cell, wide only). Headers are human names ("\\n" breaks a header
in two); cells go through reckon.streams.reports.format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from reckon.streams.costs import figures as F
from reckon.streams.costs.alerts import budget_pace
from reckon.streams.reports.format import count, ms, share, size, usd
from reckon.streams.reports.quality import (
    ARM_COLUMNS,
    ARM_TITLE,
    VERSION_COLUMNS,
    VERSION_TITLE,
    arm_cells,
    version_cells,
)
from reckon.streams.reports.why import adjacent


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[dict], str]
    wide_only: bool = False


@dataclass(frozen=True)
class ReportTable:
    title: str
    rows: list[dict]
    columns: list[Column]
    note: str = ""


LATENCY_NOTE = ("latency: an event's broker timestamp to its recommendation's publication, time queued in "
                "Kafka included (events replayed faster than they are scored wait their turn)")
STORAGE_NOTE = ("a part of the storage cost above, which also prices the users' state held (RocksDB and "
                "its changelog) and the Kafka bytes read and written")
METRIC_LABELS = {"workload_cost_usd": F.WORKLOAD.label, "workload_cost_per_1k_usd": F.WORKLOAD_PER_1K.label,
                 "burn_rate": "budget burn rate"}


def report_tables(report: dict) -> list[ReportTable]:
    """By version, online quality by version and by A/B arm, clicks by version, by tenant, by
    kind and component, ClickHouse writes, idle by worker, alerts, and the re-pricing when the
    report has one."""
    money = report["totals"]
    out = [
        ReportTable("By model version", report["by_version"], [
            Column("model version", lambda r: r["model_version"]),
            Column("recs", lambda r: count(r["recommendations"])),
            Column("events", lambda r: count(r["events"]), True),
            Column("workload\ncost", lambda r: usd(r[F.WORKLOAD.key]), True),
            Column("idle\ncost", lambda r: usd(r[F.IDLE.key]), True),
            Column("shared\ncost", lambda r: usd(r[F.SHARED.key]), True),
            Column("attributed\ncost", lambda r: usd(r[F.ATTRIBUTED.key])),
            Column("workload\nper 1k", lambda r: usd(r[F.WORKLOAD_PER_1K.key])),
            Column("attributed\nper 1k", lambda r: usd(r[F.ATTRIBUTED_PER_1K.key])),
            Column("fully loaded\nper 1k", lambda r: usd(r[F.FULLY_LOADED_PER_1K.key]), True),
            Column("latency\np50 ms", lambda r: ms(r["latency_ms"]["p50"])),
            Column("latency\np95 ms", lambda r: ms(r["latency_ms"]["p95"]), True),
            Column("latency\np99 ms", lambda r: ms(r["latency_ms"]["p99"]), True),
        ], LATENCY_NOTE),
        ReportTable(VERSION_TITLE, version_cells(report, usd), _quality_columns(VERSION_COLUMNS)),
        # the arm column makes this one wider: its purchase rate (per version above) only in --wide
        ReportTable(ARM_TITLE, arm_cells(report), _quality_columns(ARM_COLUMNS, "purchase rate")),
        ReportTable("Attributed clicks by model version", report["by_version"], [
            Column("model version", lambda r: r["model_version"]),
            Column("clicks", lambda r: count(r["attributed_clicks"])),
            Column("attributed\nper click", lambda r: usd(r["attributed_cost_per_click_usd"])),
            Column("purchases", lambda r: count(r["attributed_purchases"])),
            Column("attributed\nper purchase", lambda r: usd(r["attributed_cost_per_purchase_usd"])),
        ]),
        ReportTable("By tenant", report["by_tenant"], [
            Column("tenant", lambda r: r["tenant"]),
            Column("recs", lambda r: count(r["recommendations"])),
            Column("events", lambda r: count(r["events"]), True),
            Column("workload\ncost", lambda r: usd(r[F.WORKLOAD.key]), True),
            Column("idle\ncost", lambda r: usd(r[F.IDLE.key]), True),
            Column("shared\ncost", lambda r: usd(r[F.SHARED.key]), True),
            Column("attributed\ncost", lambda r: usd(r[F.ATTRIBUTED.key])),
            Column("of total", lambda r: _of(r[F.ATTRIBUTED.key], money[F.TOTAL.key])),
            Column("workload\nper 1k", lambda r: usd(r[F.WORKLOAD_PER_1K.key])),
            Column("attributed\nper 1k", lambda r: usd(r[F.ATTRIBUTED_PER_1K.key])),
            Column("fully loaded\nper 1k", lambda r: usd(r[F.FULLY_LOADED_PER_1K.key]), True),
        ]),
        ReportTable("By kind and component", report.get("by_component", []), [   # not in a tenant token's answer
            Column("kind", lambda r: r["kind"]),
            Column("compute", lambda r: usd(r["compute_usd"])),
            Column("storage", lambda r: usd(r["storage_usd"])),
            Column("people", lambda r: usd(r["people_usd"])),
            Column("ops", lambda r: usd(r["ops_usd"])),
            Column("total", lambda r: usd(r["cost_usd"])),
        ]),
        ReportTable("Written to ClickHouse (server part sizes)", report.get("clickhouse", []), [
            Column("table", lambda r: r["table"]),
            Column("rows", lambda r: count(r["rows"])),
            Column("bytes", lambda r: size(r["bytes"])),
            Column("cost", lambda r: usd(r["cost_usd"])),
        ], STORAGE_NOTE),
        ReportTable("Idle by worker", report["idle"], [
            Column("worker", lambda r: r["worker"]),
            Column("device", lambda r: r["device"], True),
            Column("idle cost", lambda r: usd(r[F.IDLE.key])),
            Column("paid capacity", lambda r: usd(r[F.CAPACITY.key])),
            Column("idle share", lambda r: share(r[F.IDLE_SHARE.key])),
            Column("idle s", lambda r: f"{r['idle_seconds']:,.0f}", True),
        ]),
        ReportTable("Recent alerts", report["alerts"], [
            Column("minute (UTC)", lambda r: minute(r["data_ts"])),
            Column("alert", lambda r: METRIC_LABELS.get(r["metric"], r["metric"])),
            Column("tenant / version", lambda r: f"{r['tenant'] or '*'} / {r['model_version'] or '*'}"),
            Column("severity", lambda r: r["severity"], True),
            Column("observed", lambda r: _alert_value(r, "observed")),
            Column("expected", lambda r: _alert_value(r, "expected")),
        ]),
    ]
    if "reprice" in report:
        out.append(ReportTable(f"Re-priced under {report['reprice']['sheet_version']}",
                               report["reprice"]["by_version"], [
            Column("kind", lambda r: r["kind"]),
            Column("model version", lambda r: r["model_version"] or "-"),
            Column("stored", lambda r: usd(r["stored_usd"])),
            Column("re-priced", lambda r: usd(r["repriced_usd"])),
            Column("change", lambda r: usd(r["change_usd"])),
        ]))
    return out


def _quality_columns(labels: tuple[str, ...], *wide_only: str) -> list[Column]:
    # quality.py's cells are keyed by their labels; the costs beside them only in --wide text
    return [Column(label, (lambda r, label=label: r[label]), label.startswith("attributed\n") or label in wide_only)
            for label in labels]


def why_tables(answer: dict) -> list[ReportTable]:
    """`reckon costs --why` (streams/reports/why.py): the change by part, the workload by version."""
    versions = answer["workload_by_version"]
    return [
        ReportTable("By part (per 1k; the changes add up)", answer["parts"], [
            Column("part", lambda r: r["part"]),
            Column("before", lambda r: usd(r["per_1k_before_usd"])),
            Column("after", lambda r: usd(r["per_1k_after_usd"])),
            Column("change", lambda r: signed_usd(r["change_per_1k_usd"])),
            Column("from its cost", lambda r: signed_usd(r["from_cost_per_1k_usd"])),
            Column("from volume", lambda r: signed_usd(r["from_volume_per_1k_usd"]))]),
        ReportTable(f"{F.WORKLOAD_PER_1K.label} by model version", versions["versions"], [
            Column("model version", lambda r: r["model_version"]),
            Column("before", lambda r: usd(r["workload_cost_per_1k_before_usd"])),
            Column("after", lambda r: usd(r["workload_cost_per_1k_after_usd"])),
            Column("share of recs", lambda r: f"{share(r['share_before'])} -> {share(r['share_after'])}"),
            Column("CPU ms per rec", lambda r: " -> ".join(
                _milliseconds(r[f"cpu_ms_per_recommendation_{when}"]) for when in ("before", "after")))],
            note=f"{F.WORKLOAD_PER_1K.label}'s change: {signed_usd(versions['from_mix_per_1k_usd'])} from the mix of "
                 f"versions, {signed_usd(versions['from_versions_own_cost_per_1k_usd'])} from their own cost per "
                 "recommendation"),
    ]


def _milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def signed_usd(value: str) -> str:
    """A change in dollars: '+$0.0650', '-$0.000660', '$0'."""
    return usd(value) if Decimal(value) <= 0 else "+" + usd(value)


def minute(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")


def baseline(answer: dict) -> str:
    """The earlier window of a `--why` answer, in words: "the 1 h before" where it ends as the
    later one starts, else its times (`--against`)."""
    before, after = answer["before"]["window"], answer["after"]["window"]
    if adjacent(before, after):
        return f"the {after['hours']:g} h before"
    return f"{minute(before['start'])} to {minute(before['end'])} UTC"


def _of(part: str, whole: str) -> str:
    return "-" if Decimal(whole) == 0 else share(float(Decimal(part) / Decimal(whole)))


def _alert_value(alert: dict, field: str) -> str:
    """Dollars, every metric's (a budget's: spend over its long window, and what the budget
    allows over it); a budget's observed spend also says how many times its pace that is."""
    multiple = budget_pace(alert["metric"], float(alert["observed"]), float(alert["expected"]))
    return usd(alert[field]) + ("" if multiple is None or field != "observed" else f" ({multiple:.1f}x)")
