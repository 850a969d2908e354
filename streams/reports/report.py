"""The cost report: one JSON-able dict built from ClickHouse, rendered as tables or HTML.

The same dict answers `reckon costs --json`, the worker's `GET /costs` (when the worker
holds the embedded store) and feeds the text and HTML renderers, so every path shows
the same numbers. Money is a decimal string (12 places) so no float ever rounds it;
ratios and counts are numbers.

Per version and per tenant, cost is what is attributed: workload + the shared cost spread
over them. Idle cost belongs to workers; totals show all three and the idle share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from reckon.streams.clickhouse.client import ClickHouse
from reckon.streams.costs.alert_engine import recent_alerts
from reckon.streams.costs.repricing import reprice
from reckon.streams.reports.quality import bucket_seconds, quality_rows, render_quality_text
from reckon.streams.reports.queries import (
    attribution_query,
    audit_query,
    by_dimension_query,
    by_kind_query,
    idle_query,
    series_query,
)

KINDS = ("workload", "idle", "shared")
COMPONENTS = ("compute", "storage", "people", "ops")
_Q = Decimal("0.000000000001")
MAX_HOURS = 24 * 400
_IDLE_SHARE_ALL_TIME = "SELECT sumIf(cost_usd, kind = 'idle') AS idle_usd, sum(cost_usd) AS total_usd FROM cost_minute"


@dataclass(frozen=True)
class ReportRequest:
    hours: float = 24.0
    end: datetime | None = None          # default: now
    tenant: str | None = None
    series: bool = False                 # per-minute points per version (for plots)
    audit: bool = False                  # raw rows vs rollups, over all time
    sheet_version: str | None = None     # also re-price the window under this sheet version
    attribution_window_s: int = 1800
    summary: bool = False                # totals and idle share only: one query, cheap to poll

    def __post_init__(self) -> None:
        if not 0 < self.hours <= MAX_HOURS:
            raise ValueError(f"hours must be in (0, {MAX_HOURS}]")
        if not 0 < self.attribution_window_s <= 7 * 86400:
            raise ValueError("attribution_window_s must be in (0, 604800]")

    def window(self) -> tuple[datetime, datetime]:
        end = (self.end or datetime.now(timezone.utc)).astimezone(timezone.utc)
        return end - timedelta(hours=self.hours), end

    def to_query(self) -> dict[str, str]:
        """HTTP query parameters for `GET /costs` (the inverse of `from_query`)."""
        out = {"hours": repr(self.hours), "attribution_window_s": str(self.attribution_window_s)}
        if self.end is not None:
            out["end"] = self.end.isoformat()
        if self.tenant is not None:
            out["tenant"] = self.tenant
        if self.sheet_version is not None:
            out["sheet_version"] = self.sheet_version
        out.update({k: "1" for k in ("series", "audit", "summary") if getattr(self, k)})
        return out

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> "ReportRequest":
        """Parse `GET /costs` parameters; ValueError names the bad one."""
        known = {"hours", "end", "tenant", "series", "audit", "summary", "sheet_version", "attribution_window_s"}
        unknown = set(query) - known
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}; known: {sorted(known)}")
        try:
            end = datetime.fromisoformat(query["end"]) if "end" in query else None
            if end is not None and end.tzinfo is None:
                end = end.replace(tzinfo=timezone.utc)
            return cls(hours=float(query.get("hours", 24)), end=end, tenant=query.get("tenant"),
                       series=query.get("series", "0") in ("1", "true"),
                       audit=query.get("audit", "0") in ("1", "true"),
                       summary=query.get("summary", "0") in ("1", "true"),
                       sheet_version=query.get("sheet_version"),
                       attribution_window_s=int(query.get("attribution_window_s", 1800)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad query parameter: {exc}") from None


def build_report(ch: ClickHouse, request: ReportRequest) -> dict:
    start, end = request.window()
    tenant = request.tenant
    kinds = {r["kind"]: r for r in ch.query_dicts(*by_kind_query(start, end, tenant), tag="costs:kinds")}
    usd = {k: _dec(kinds.get(k, {}).get("cost_usd")) for k in KINDS}
    total = sum(usd.values(), Decimal(0))
    recs = int(kinds.get("workload", {}).get("recommendations") or 0)
    attributed = usd["workload"] + usd["shared"]
    report: dict = {
        "window": {"start": start.isoformat(), "end": end.isoformat(), "hours": request.hours,
                   "tenant": tenant, "attribution_window_s": request.attribution_window_s},
        "totals": {"cost_usd": _money(total), "workload_usd": _money(usd["workload"]),
                   "idle_usd": _money(usd["idle"]), "shared_usd": _money(usd["shared"]),
                   "recommendations": recs,
                   "events": int(kinds.get("workload", {}).get("events") or 0),
                   "cost_per_1k_recs_usd": _per(attributed * 1000, recs),
                   "fully_loaded_per_1k_recs_usd": _per(total * 1000, recs)},
        "idle_share": float(usd["idle"] / total) if total else None,
    }
    if request.summary:
        return report
    attribution = {r["model_version"]: r for r in ch.query_dicts(
        *attribution_query(start, end, request.attribution_window_s, tenant), tag="costs:attribution")}
    report |= {
        "by_component": [{"kind": kind, **{f"{c}_usd": _money(_dec(kinds.get(kind, {}).get(f"{c}_usd")))
                                           for c in COMPONENTS}, "cost_usd": _money(usd[kind])}
                         for kind in KINDS if kind in kinds],
        "by_version": [_dimension_row(r, attribution.get(r["model_version"]))
                       for r in ch.query_dicts(*by_dimension_query("model_version", start, end, tenant),
                                               tag="costs:versions")],
        "by_tenant": [_dimension_row(r, None) for r in ch.query_dicts(
            *by_dimension_query("tenant", start, end, tenant), tag="costs:tenants")],
        "idle": [{"worker": r["worker"], "device": r["device"], "idle_usd": _money(_dec(r["idle_usd"])),
                  "total_usd": _money(_dec(r["total_usd"])), "idle_seconds": round(r["idle_seconds"], 3),
                  "idle_share": float(_dec(r["idle_usd"]) / _dec(r["total_usd"])) if r["total_usd"] else None}
                 for r in ch.query_dicts(*idle_query(start, end), tag="costs:idle")],
        "alerts": recent_alerts(ch, start),
    }
    report["online_quality"] = _online_quality(ch, request, start, end)
    if request.series:
        report["series"] = [{"minute": _iso(r["minute"]), "model_version": r["model_version"],
                             "cost_usd": _money(_dec(r["cost_usd"])), "recommendations": int(r["recommendations"])}
                            for r in ch.query_dicts(*series_query(start, end, tenant), tag="costs:series")]
    if request.audit:
        audit = ch.query_dicts(*audit_query(), tag="costs:audit")[0]
        report["audit"] = {k: _money(_dec(v)) if k.endswith("_usd") else int(v) for k, v in audit.items()}
    if request.sheet_version is not None:
        report["reprice"] = {"sheet_version": request.sheet_version, "by_version": [
            {"model_version": r["model_version"], "stored_usd": _money(_dec(r["stored_usd"])),
             "repriced_usd": _money(_dec(r["repriced_usd"]))}
            for r in reprice(ch, request.sheet_version, start, end, ("model_version",), tenant)]}
    return report


def _online_quality(ch: ClickHouse, request: ReportRequest, start: datetime, end: datetime) -> dict:
    """Attributed CTR and purchase rate per version and per arm (streams/reports/quality.py);
    over time too when the report carries series."""
    window, tenant = request.attribution_window_s, request.tenant
    out = {"by_version": quality_rows(ch, "version", start, end, window, tenant),
           "by_arm": quality_rows(ch, "arm", start, end, window, tenant)}
    if request.series:
        bucket = bucket_seconds(request.hours)
        out |= {"bucket_s": bucket, "series": quality_rows(ch, "series", start, end, window, tenant, bucket)}
    return out


def demo_extras(ch: ClickHouse) -> dict:
    """What `reckon demo --json` adds: the idle share and the alerts raised (all time: a demo's store
    holds one run)."""
    idle, total = ch.query(_IDLE_SHARE_ALL_TIME, tag="demo:idle")[0]
    alerts = recent_alerts(ch, datetime(1970, 1, 1, tzinfo=timezone.utc), limit=100)
    return {"idle_share": float(_dec(idle) / _dec(total)) if total else None, "alerts": alerts}


def _dimension_row(r: dict, attribution: dict | None) -> dict:
    dim = "model_version" if "model_version" in r else "tenant"
    cost = _dec(r["attributed_usd"])
    recs = int(r["recommendations"])
    p50, p95, p99 = (list(r["latency_ms"]) + [None, None, None])[:3]
    row = {dim: r[dim], "cost_usd": _money(cost), "workload_usd": _money(_dec(r["workload_usd"])),
           "shared_usd": _money(_dec(r["shared_usd"])), "recommendations": recs, "events": int(r["events"]),
           "cost_per_1k_recs_usd": _per(cost * 1000, recs),
           "latency_ms": {"p50": _num(p50), "p95": _num(p95), "p99": _num(p99)}}
    if dim == "model_version":
        clicks = int((attribution or {}).get("attributed_clicks") or 0)
        purchases = int((attribution or {}).get("attributed_purchases") or 0)
        row |= {"attributed_clicks": clicks, "attributed_purchases": purchases,
                "cost_per_attributed_click_usd": _per(cost, clicks),
                "cost_per_attributed_purchase_usd": _per(cost, purchases)}
    return row


def render_text(report: dict, console: Console) -> None:
    """Tables for a terminal: totals, by version, by tenant, by component, idle, alerts."""
    w, t = report["window"], report["totals"]
    share = report["idle_share"]
    console.print(f"[bold]Reckon costs[/bold] {w['start']} .. {w['end']}"
                  + (f" tenant {w['tenant']}" if w["tenant"] else ""))
    console.print(f"total {_usd(t['cost_usd'])} = workload {_usd(t['workload_usd'])} + idle {_usd(t['idle_usd'])}"
                  f" + shared {_usd(t['shared_usd'])}; {t['recommendations']} recommendations, "
                  f"{_usd(t['cost_per_1k_recs_usd'])} per 1k (attributed), "
                  f"idle share {'-' if share is None else f'{share:.1%}'}")
    _table(console, "By model version", report["by_version"],
           ("model_version", "cost_usd", "recommendations", "cost_per_1k_recs_usd", "attributed_clicks",
            "cost_per_attributed_click_usd", "attributed_purchases", "cost_per_attributed_purchase_usd"))
    _table(console, "By tenant", report["by_tenant"],
           ("tenant", "cost_usd", "workload_usd", "shared_usd", "recommendations", "cost_per_1k_recs_usd"))
    _table(console, "By component", report["by_component"],
           ("kind", "compute_usd", "storage_usd", "people_usd", "ops_usd", "cost_usd"))
    _table(console, "Idle by worker", report["idle"], ("worker", "device", "idle_usd", "total_usd", "idle_share"))
    _table(console, "Recent alerts", report["alerts"],
           ("ts", "kind", "metric", "tenant", "model_version", "severity", "observed", "expected"))
    render_quality_text(report, console, _usd)
    if "reprice" in report:
        _table(console, f"Re-priced under {report['reprice']['sheet_version']}", report["reprice"]["by_version"],
               ("model_version", "stored_usd", "repriced_usd"))


def _table(console: Console, title: str, rows: list[dict], columns: tuple[str, ...]) -> None:
    if not rows:
        console.print(f"{title}: none")
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column in ("model_version", "tenant", "worker", "device",
                                                              "kind", "metric", "ts", "severity") else "right")
    for row in rows:
        table.add_row(*[_cell(column, row.get(column)) for column in columns])
    console.print(table)


def _cell(column: str, value: object) -> str:
    if value is None:
        return "-"
    if column.endswith("_usd") or column in ("observed", "expected"):
        return _usd(value) if column.endswith("_usd") else f"{Decimal(str(value)):.6g}"
    if column == "idle_share":
        return f"{float(value):.1%}"  # type: ignore[arg-type]
    # Idle rows and shared cost of intervals where nothing ran carry no tenant or version.
    return str(value) or "(unattributed)"


def _usd(value: object) -> str:
    if value is None:
        return "-"
    amount = Decimal(str(value))
    return f"${amount:.2f}" if abs(amount) >= 1 else f"${amount:.6f}"


def _dec(value: object) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value)) if not isinstance(value, Decimal) else value


def _money(value: Decimal) -> str:
    return f"{value.quantize(_Q):f}"   # fixed point: never "4.2E-7"


def _per(amount: Decimal, count: int) -> str | None:
    return _money(amount / count) if count else None


def _num(value: object) -> float | None:
    return None if value is None or value != value else round(float(value), 3)  # type: ignore[arg-type]


def _iso(ts: datetime) -> str:
    return (ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts).isoformat()
