"""The cost report: one JSON-able dict built from ClickHouse, rendered as text (text.py) or HTML.

The same dict answers `reckon costs --json`, the worker's `GET /costs` (when the worker
holds the embedded store) and `reckon demo`, and feeds the text and HTML renderers, so
every path shows the same figures under the same names (streams/costs/figures.py). Money
is a decimal string at 12 places (the stored precision) so no float ever rounds it; ratios
and counts are numbers.

Idle and shared cost are spread over (tenant, model version) in proportion to workload
cost over the report's window (streams/costs/allocation.py); per-tenant and per-version
rows therefore add up exactly to the total (or to the total less idle, with idle kept
separate). Charts allocate each minute on its own, by the same rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from reckon.models.core.money import usd_string
from reckon.streams.clickhouse.client import ClickHouse
from reckon.streams.core.ids import MAX_ID_CHARS, printable_id
from reckon.streams.costs import figures as F
from reckon.streams.costs.alert_engine import recent_alerts
from reckon.streams.costs.allocation import IDLE_POLICIES, Allocation, IdlePolicy, allocate, per_1k, spread
from reckon.streams.costs.repricing import price_change, reprice
from reckon.streams.reports.quality import bucket_seconds, quality_rows
from reckon.streams.reports.queries import (
    attribution_query,
    audit_query,
    by_kind_query,
    capacity_query,
    clickhouse_query,
    latency_query,
    series_query,
    workload_query,
)

KINDS = ("workload", "idle", "shared")
COMPONENTS = ("compute", "storage", "people", "ops")
_Q = Decimal("0.000000000001")
MAX_HOURS = 24 * 400
Pair = tuple[str, str]   # (tenant, model_version)


@dataclass(frozen=True)
class ReportRequest:
    hours: float = 24.0
    end: datetime | None = None          # default: now
    tenant: str | None = None
    series: bool = False                 # per-minute points per version and tenant (for plots)
    audit: bool = False                  # raw rows vs rollups, over all time
    sheet_version: str | None = None     # also re-price the window under this sheet version
    attribution_window_s: int = 1800
    summary: bool = False                # totals only: cheap to poll
    idle: IdlePolicy = "shared"          # spread idle over tenants and versions, or keep it separate

    def __post_init__(self) -> None:
        if not 0 < self.hours <= MAX_HOURS:
            raise ValueError(f"hours must be in (0, {MAX_HOURS}]")
        if not 0 < self.attribution_window_s <= 7 * 86400:
            raise ValueError("attribution_window_s must be in (0, 604800]")
        if self.idle not in IDLE_POLICIES:
            raise ValueError(f"idle must be one of {', '.join(IDLE_POLICIES)}")
        if self.tenant is not None and not printable_id(self.tenant):
            # the contract's limits for an event's tenant: no stored row can name another
            raise ValueError(f"tenant must be 1..{MAX_ID_CHARS} printable characters")
        try:
            self.window()
        except OverflowError:
            raise ValueError("end and hours reach outside the calendar (years 1-9999)") from None

    def window(self) -> tuple[datetime, datetime]:
        end = (self.end or datetime.now(timezone.utc)).astimezone(timezone.utc)
        return end - timedelta(hours=self.hours), end

    def to_query(self) -> dict[str, str]:
        """HTTP query parameters for `GET /costs` (the inverse of `from_query`)."""
        out = {"hours": repr(self.hours), "attribution_window_s": str(self.attribution_window_s), "idle": self.idle}
        if self.end is not None:
            out["end"] = self.end.isoformat()
        if self.tenant is not None:
            out["tenant"] = self.tenant
        if self.sheet_version is not None:
            out["sheet_version"] = self.sheet_version
        out.update({k: "1" for k in ("series", "audit", "summary") if getattr(self, k)})
        return out

    @classmethod
    def from_query(cls, query: Mapping[str, str], attribution_window_s: int | None = None) -> "ReportRequest":
        """Parse `GET /costs` parameters (`attribution_window_s`: the window when none is
        asked for); ValueError names the bad one."""
        known = {"hours", "end", "tenant", "series", "audit", "summary", "sheet_version", "attribution_window_s",
                 "idle"}
        unknown = set(query) - known
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}; known: {sorted(known)}")
        try:
            end = datetime.fromisoformat(query["end"]) if "end" in query else None
            if end is not None and end.tzinfo is None:
                end = end.replace(tzinfo=timezone.utc)
            return cls(hours=float(query.get("hours", 24)), end=end, tenant=query.get("tenant"),
                       series=_flag(query, "series"), audit=_flag(query, "audit"), summary=_flag(query, "summary"),
                       sheet_version=query.get("sheet_version"),
                       attribution_window_s=int(query.get("attribution_window_s",
                                                                   attribution_window_s or cls.attribution_window_s)),
                       idle=query.get("idle", "shared"))  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad query parameter: {exc}") from None


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "0")
    if value not in ("0", "1", "true", "false"):     # `yes` silently read as no was a wrong report
        raise ValueError(f"{name} must be 0 or 1, got {value[:20]!r}")
    return value in ("1", "true")


@dataclass(frozen=True)
class _Workload:
    usd: Decimal
    recommendations: int
    events: int
    cpu_seconds: float
    device_seconds: float


def build_report(ch: ClickHouse, request: ReportRequest) -> dict:
    start, end = request.window()
    kinds = {r["kind"]: r for r in ch.query_dicts(*by_kind_query(start, end), tag="costs:kinds")}
    usd = {k: _dec(kinds.get(k, {}).get("cost_usd")) for k in KINDS}
    pairs = {(r["tenant"], r["model_version"]): _Workload(_dec(r["workload_usd"]), int(r["recommendations"]),
                                                          int(r["events"]), float(r["cpu_seconds"]),
                                                          float(r["device_seconds"]))
             for r in ch.query_dicts(*workload_query(start, end), tag="costs:workload")}
    shares = allocate({k: w.usd for k, w in pairs.items()}, usd["idle"], usd["shared"], request.idle)
    mine = {k: v for k, v in shares.items() if request.tenant in (None, k[0])}
    capacity = ch.query_dicts(*capacity_query(start, end), tag="costs:capacity")
    report: dict = {
        "window": {"start": start.isoformat(), "end": end.isoformat(), "hours": request.hours,
                   "tenant": request.tenant, "idle": request.idle,
                   "attribution_window_s": request.attribution_window_s},
        "currency": "USD",
        "totals": _totals(kinds, usd, pairs, mine, capacity, request.tenant),
    }
    if request.summary:
        return report
    attribution = {r["model_version"]: r for r in ch.query_dicts(
        *attribution_query(start, end, request.attribution_window_s, request.tenant), tag="costs:attribution")}
    report |= {
        "by_version": _rows("model_version", mine, pairs,
                            _latency(ch, "model_version", start, end, request.tenant), attribution),
        "by_tenant": _rows("tenant", mine, pairs, _latency(ch, "tenant", start, end, request.tenant), None),
        "by_component": [{"kind": kind,
                          **{f"{c}_usd": usd_string(_dec(kinds[kind].get(f"{c}_usd"))) for c in COMPONENTS},
                          "cost_usd": usd_string(usd[kind])} for kind in KINDS if kind in kinds],
        "idle": [_capacity_row(r) for r in capacity],
        "clickhouse": [{"table": r["table"], "bytes": int(r["bytes"]), "rows": int(r["rows"]),
                        "cost_usd": usd_string(_dec(r["cost_usd"]))}
                       for r in ch.query_dicts(*clickhouse_query(start, end), tag="costs:clickhouse")],
        "alerts": recent_alerts(ch, start, tenant=request.tenant),
        "online_quality": _online_quality(ch, request, start, end),
    }
    if request.series:
        report["series"] = _series(ch, start, end, request)
    if request.audit:
        audit = ch.query_dicts(*audit_query(), tag="costs:audit")[0]
        report["audit"] = {k: usd_string(_dec(v)) if k.endswith("_usd") else int(v) for k, v in audit.items()}
    if request.sheet_version is not None:
        # By kind too: idle and shared rows are workers', with no version to group them by.
        report["reprice"] = {"sheet_version": request.sheet_version, "by_version": [
            {"kind": r["kind"], "model_version": r["model_version"], "stored_usd": usd_string(_dec(r["stored_usd"])),
             "repriced_usd": usd_string(_dec(r["repriced_usd"])), "cost_rows": int(r["cost_rows"]),
             "change_usd": usd_string(price_change(_dec(r["stored_usd"]), _dec(r["repriced_usd"]),
                                                   int(r["cost_rows"])))}
            for r in reprice(ch, request.sheet_version, start, end, ("kind", "model_version"), request.tenant)]}
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


def _totals(kinds: dict, usd: dict[str, Decimal], pairs: dict[Pair, _Workload], mine: dict[Pair, Allocation],
            capacity: list[dict], tenant: str | None) -> dict:
    components = {c: sum((_dec(r.get(f"{c}_usd")) for r in kinds.values()), Decimal(0)) for c in ("people", "ops")}
    workload = sum((a.workload for a in mine.values()), Decimal(0))
    attributed = sum((a.attributed for a in mine.values()), Decimal(0))
    recs = sum(pairs[k].recommendations for k in mine)
    if tenant is None:
        total, idle, shared = sum(usd.values(), Decimal(0)), usd["idle"], usd["shared"]
    else:   # the tenant's part of everything: its workload and its shares of idle and shared
        total = sum((a.fully_loaded for a in mine.values()), Decimal(0))
        idle = sum((a.all_idle for a in mine.values()), Decimal(0))
        shared = sum((a.shared for a in mine.values()), Decimal(0))
        weights = {k: w.usd for k, w in pairs.items()}
        components = {c: sum((v for k, v in spread(amount, weights).items() if k in mine), Decimal(0))
                      for c, amount in components.items()}
    idle_usd = sum((_dec(r["idle_usd"]) for r in capacity), Decimal(0))
    paid = idle_usd + sum((_dec(r["used_usd"]) for r in capacity), Decimal(0))
    return {
        F.TOTAL.key: usd_string(total), F.WORKLOAD.key: usd_string(workload), F.IDLE.key: usd_string(idle),
        F.SHARED.key: usd_string(shared), F.PEOPLE.key: usd_string(components["people"]),
        F.OPS.key: usd_string(components["ops"]), F.ATTRIBUTED.key: usd_string(attributed),
        F.UNALLOCATED.key: usd_string(total - attributed),
        "recommendations": recs, "events": sum(pairs[k].events for k in mine),
        F.WORKLOAD_PER_1K.key: _opt(per_1k(workload, recs)), F.ATTRIBUTED_PER_1K.key: _opt(per_1k(attributed, recs)),
        F.FULLY_LOADED_PER_1K.key: _opt(per_1k(total, recs)),
        F.CAPACITY.key: usd_string(paid), F.IDLE_SHARE.key: float(idle_usd / paid) if paid else None,
    }


def _rows(dim: str, shares: dict[Pair, Allocation], pairs: dict[Pair, _Workload], latency: dict[str, list],
          attribution: dict[str, dict] | None) -> list[dict]:
    """Pairs summed per version or per tenant; largest attributed cost first."""
    index = 1 if dim == "model_version" else 0
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 5)
    # recommendations, events, and what the workload cost measured: CPU and device seconds
    measured: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0])
    for key, a in shares.items():
        parts = sums[key[index]]
        for i, amount in enumerate((a.workload, a.idle, a.shared, a.attributed, a.fully_loaded)):
            parts[i] += amount
        w, m = pairs[key], measured[key[index]]
        for i, value in enumerate((w.recommendations, w.events, w.cpu_seconds, w.device_seconds)):
            m[i] += value
    rows = []
    for name, (workload, idle, shared, attributed, fully_loaded) in sums.items():
        recs, events, cpu_seconds, device_seconds = measured[name]
        p50, p95, p99 = (list(latency.get(name) or []) + [None, None, None])[:3]
        row = {dim: name, F.WORKLOAD.key: usd_string(workload), F.IDLE.key: usd_string(idle),
               F.SHARED.key: usd_string(shared), F.ATTRIBUTED.key: usd_string(attributed),
               "recommendations": recs, "events": events,
               # what the workload cost measured: CPU of the batches' threads, device time of scoring
               "workload_cpu_seconds": round(cpu_seconds, 6), "workload_device_seconds": round(device_seconds, 6),
               F.WORKLOAD_PER_1K.key: _opt(per_1k(workload, recs)),
               F.ATTRIBUTED_PER_1K.key: _opt(per_1k(attributed, recs)),
               F.FULLY_LOADED_PER_1K.key: _opt(per_1k(fully_loaded, recs)),
               "latency_ms": {"p50": _num(p50), "p95": _num(p95), "p99": _num(p99)}}
        if attribution is not None:
            clicks = int((attribution.get(name) or {}).get("attributed_clicks") or 0)
            purchases = int((attribution.get(name) or {}).get("attributed_purchases") or 0)
            row |= {"attributed_clicks": clicks, "attributed_purchases": purchases,
                    "attributed_cost_per_click_usd": _opt(_ratio(attributed, clicks)),
                    "attributed_cost_per_purchase_usd": _opt(_ratio(attributed, purchases))}
        rows.append(row)
    return sorted(rows, key=lambda r: (-Decimal(r[F.ATTRIBUTED.key]), r[dim]))


def _latency(ch: ClickHouse, dim: str, start: datetime, end: datetime, tenant: str | None) -> dict[str, list]:
    return {r[dim]: list(r["latency_ms"])
            for r in ch.query_dicts(*latency_query(dim, start, end, tenant), tag=f"costs:latency:{dim}")}


def _capacity_row(r: dict) -> dict:
    idle, used = _dec(r["idle_usd"]), _dec(r["used_usd"])
    return {"worker": r["worker"], "device": r["device"], F.IDLE.key: usd_string(idle),
            F.CAPACITY.key: usd_string(idle + used), "idle_seconds": round(float(r["idle_seconds"]), 3),
            F.IDLE_SHARE.key: float(idle / (idle + used)) if idle + used else None}


def _series(ch: ClickHouse, start: datetime, end: datetime, request: ReportRequest) -> dict:
    """Per minute, each minute allocated on its own: attributed cost per version and per
    tenant, recommendations, and the minute's idle share."""
    minutes: dict[datetime, dict] = defaultdict(lambda: {"workload": {}, "recs": defaultdict(int),
                                                         "idle": Decimal(0), "shared": Decimal(0),
                                                         "used": Decimal(0)})
    for r in ch.query_dicts(*series_query(start, end), tag="costs:series"):
        m = minutes[_utc(r["minute"])]
        if r["kind"] == "workload":
            key = (r["tenant"], r["model_version"])
            m["workload"][key] = m["workload"].get(key, Decimal(0)) + _dec(r["cost_usd"])
            m["recs"][key] += int(r["recommendations"])
            m["used"] += _dec(r["compute_usd"])
        else:
            m[r["kind"]] += _dec(r["cost_usd"])
    out: dict[str, list[dict]] = {"by_version": [], "by_tenant": [], "idle_share": []}
    for minute in sorted(minutes):
        m = minutes[minute]
        shares = allocate(m["workload"], m["idle"], m["shared"], request.idle)
        for dim, index in (("model_version", 1), ("tenant", 0)):
            per: dict[str, list] = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
            for key, a in shares.items():
                if request.tenant in (None, key[0]):
                    per[key[index]][0] += a.workload
                    per[key[index]][1] += a.attributed
                    per[key[index]][2] += m["recs"][key]
            out["by_version" if index else "by_tenant"] += [
                {"minute": minute.isoformat(), dim: name, F.WORKLOAD.key: usd_string(w),
                 F.ATTRIBUTED.key: usd_string(a),
                 "recommendations": recs, F.WORKLOAD_PER_1K.key: _opt(per_1k(w, recs)),
                 F.ATTRIBUTED_PER_1K.key: _opt(per_1k(a, recs))}
                for name, (w, a, recs) in sorted(per.items())]
        paid = m["idle"] + m["used"]
        out["idle_share"].append({"minute": minute.isoformat(), F.IDLE.key: usd_string(m["idle"]),
                                  F.CAPACITY.key: usd_string(paid),
                                  F.IDLE_SHARE.key: float(m["idle"] / paid) if paid else None})
    return out


def _dec(value: object) -> Decimal:
    return Decimal(0) if value is None else value if isinstance(value, Decimal) else Decimal(str(value))


def _opt(value: Decimal | None) -> str | None:
    return None if value is None else usd_string(value)


def _ratio(amount: Decimal, count: int) -> Decimal | None:
    return (amount / count).quantize(_Q) if count else None


def _num(value: object) -> float | None:
    return None if value is None or value != value else round(float(value), 3)  # type: ignore[arg-type]


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)
