"""Evaluate cost alerts over the minute rollup, store them, and deliver them.

Runs where the store is (the sink role), from a timer every `alert_interval_s`:

- anomalies per (tenant, model version) minute series of workload cost and of workload
  cost per 1,000 recommendations. Workload only: idle and shared cost are a worker's fixed
  cost spread by rule, so they would mask a version whose own cost jumps. The current,
  still-filling minute is checked too (cost only grows within a minute, so a partial
  minute cannot raise a false spike), which is what lets a spike
  alert within seconds of its data rather than after its minute closes;
- budget burn per tenant on its attributed cost (workload + its share of idle and shared in
  each window, streams/costs/allocation.py) and for `*` on everything.

Delivery: the `alerts` table (here), then topic `cost-alerts` and an optional webhook
(streams/worker/accounting.py). Alert ids are stable, so nothing is raised twice.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlsplit

import httpx

from reckon.streams.clickhouse.client import ClickHouse
from reckon.streams.costs.alerts import (Alert, BurnConfig, DetectorConfig, Verdict, budget_pace, check_budget,
                                         detect_spike)
from reckon.streams.costs.allocation import allocate

log = logging.getLogger(__name__)

ALERT_COLUMNS = ("alert_id", "ts", "kind", "metric", "tenant", "model_version", "severity", "observed",
                 "expected", "window", "dims", "data_ts")
ALL_TENANTS = "*"

_SERIES_SQL = (
    "SELECT minute, tenant, model_version, sum(cost_usd) AS cost_usd, sum(recommendations) AS recs "
    "FROM cost_minute WHERE kind = 'workload' AND minute >= {start:DateTime('UTC')} "
    "AND minute <= {end:DateTime('UTC')} "
    "GROUP BY minute, tenant, model_version ORDER BY tenant, model_version, minute")
_SPEND_SQL = (
    "SELECT kind, tenant, sumIf(cost_usd, minute >= {short_start:DateTime('UTC')}) AS short_usd, "
    "sum(cost_usd) AS long_usd FROM cost_minute "
    "WHERE minute >= {long_start:DateTime('UTC')} AND minute <= {now:DateTime('UTC')} "
    "GROUP BY kind, tenant ORDER BY kind, tenant")
_RECENT_IDS_SQL = "SELECT alert_id FROM alerts WHERE ts >= {since:DateTime64(3, 'UTC')}"
_RECENT_SQL = (
    "SELECT alert_id, ts, kind, metric, tenant, model_version, severity, observed, expected, window, "
    "data_ts FROM alerts FINAL WHERE ts >= {since:DateTime64(3, 'UTC')}{tenant_filter} "
    "ORDER BY ts DESC LIMIT {limit:UInt32}")


@dataclass(frozen=True)
class AlertConfig:
    detector: DetectorConfig = DetectorConfig()
    burn: BurnConfig = BurnConfig()
    min_recs: int = 20                                 # per minute, for cost per 1k recs
    daily_budget_usd: tuple[tuple[str, Decimal], ...] = ()   # (tenant or "*", USD per day)


def series_query(now: datetime, window: int) -> tuple[str, dict]:
    minute = _minute(now)
    return _SERIES_SQL, {"start": minute - timedelta(minutes=window + 1), "end": minute}


def spend_query(now: datetime, burn: BurnConfig) -> tuple[str, dict]:
    params = {"short_start": _minute(now) - timedelta(minutes=burn.short_minutes),
              "long_start": _minute(now) - timedelta(minutes=burn.long_minutes), "now": _minute(now)}
    return _SPEND_SQL, params


def recent_alerts_query(since: datetime, limit: int = 50, tenant: str | None = None) -> tuple[str, dict]:
    """The newest alerts since `since`; a tenant's only when `tenant` is given."""
    if tenant is None:
        return _RECENT_SQL.replace("{tenant_filter}", ""), {"since": since, "limit": limit}
    return (_RECENT_SQL.replace("{tenant_filter}", " AND tenant = {tenant:String}"),
            {"since": since, "limit": limit, "tenant": tenant})


class AlertEngine:
    def __init__(self, ch: ClickHouse, config: AlertConfig) -> None:
        self.ch = ch
        self.config = config
        self._seen: set[str] | None = None

    def evaluate(self, now: datetime | None = None) -> list[Alert]:
        """Alerts that are due now and were not raised before (stored in `alerts` on return)."""
        now = now or datetime.now(timezone.utc)
        alerts = self._anomalies(now) + self._budgets(now)
        seen = self._seen_ids(now)
        fresh = [a for a in alerts if a.alert_id not in seen]
        if fresh:
            self.ch.insert("alerts", [_row(a) for a in fresh], ALERT_COLUMNS, tag="alerts:insert")
            seen.update(a.alert_id for a in fresh)
        return fresh

    def _seen_ids(self, now: datetime) -> set[str]:
        if self._seen is None:   # once per process: alerts raised before a restart stay raised
            self._seen = {r[0] for r in self.ch.query(_RECENT_IDS_SQL, {"since": now - timedelta(days=2)},
                                                      tag="alerts:seen")}
        return self._seen

    def _anomalies(self, now: datetime) -> list[Alert]:
        cfg = self.config
        sql, params = series_query(now, cfg.detector.window)
        series: dict[tuple[str, str], list[tuple[datetime, float, int]]] = defaultdict(list)
        for minute, tenant, version, cost, recs in self.ch.query(sql, params, tag="alerts:series"):
            series[(tenant, version)].append((_utc(minute), float(cost), int(recs)))
        current = _minute(now)
        out: list[Alert] = []
        for (tenant, version), points in series.items():
            dims = {"tenant": tenant, "model_version": version}
            for at, cost, recs in points:
                if at < current - timedelta(minutes=1):
                    continue   # only the filling minute and the one just closed are news
                before = [p for p in points if p[0] < at]
                verdict = detect_spike([p[1] for p in before], cost, cfg.detector)
                if verdict:
                    out.append(_anomaly("workload_cost_usd", dims, verdict, now, at, cfg.detector.window))
                typical = sorted(p[2] for p in before)
                enough = max(cfg.min_recs, typical[len(typical) // 2] // 4 if typical else 0)
                if recs >= enough:
                    history = [p[1] * 1000 / p[2] for p in before if p[2] >= cfg.min_recs]
                    verdict = detect_spike(history, cost * 1000 / recs, cfg.detector)
                    if verdict:
                        out.append(_anomaly("workload_cost_per_1k_usd", dims, verdict, now, at, cfg.detector.window))
        return out

    def _budgets(self, now: datetime) -> list[Alert]:
        budgets = dict(self.config.daily_budget_usd)
        if not budgets:
            return []
        burn = self.config.burn
        rows = self.ch.query(*spend_query(now, burn), tag="alerts:spend")
        spend = {tenant: tuple(pair) for tenant, pair in _attributed_spend(rows).items() if tenant in budgets}
        hour = now.replace(minute=0, second=0, microsecond=0)
        out = []
        for tenant, (short, long_) in sorted(spend.items()):
            verdict = check_budget(short, long_, budgets[tenant], burn)
            if verdict:
                out.append(Alert(kind="budget", metric="burn_rate", dims={"tenant": tenant},
                                 observed=verdict.observed, expected=verdict.expected,
                                 severity=verdict.severity,
                                 window=f"{burn.short_minutes}m/{burn.long_minutes}m",
                                 ts=now.timestamp(), data_ts=hour.timestamp()))
        return out


def _attributed_spend(rows: list[tuple]) -> dict[str, list[Decimal]]:
    """(kind, tenant, short, long) rows -> tenant -> [short, long] attributed cost; `*` -> everything."""
    out: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for window in (0, 1):
        workload: dict[str, Decimal] = defaultdict(Decimal)
        fixed = {"idle": Decimal(0), "shared": Decimal(0)}
        for kind, tenant, *amounts in rows:
            amount = Decimal(amounts[window])
            out[ALL_TENANTS][window] += amount
            if kind == "workload":
                workload[tenant] += amount
            else:
                fixed[kind] += amount
        for tenant, share in allocate(workload, fixed["idle"], fixed["shared"]).items():
            out[tenant][window] = share.attributed
    return out


def recent_alerts(ch: ClickHouse, since: datetime, limit: int = 50, tenant: str | None = None) -> list[dict]:
    sql, params = recent_alerts_query(since, limit, tenant)
    return [{**r, "ts": _utc(r["ts"]).isoformat(), "data_ts": _utc(r["data_ts"]).isoformat(),
             "observed": str(r["observed"]), "expected": str(r["expected"])}
            for r in ch.query_dicts(sql, params, tag="alerts:recent")]


def _anomaly(metric: str, dims: dict[str, str], verdict: Verdict, now: datetime, minute: datetime,
             window: int) -> Alert:
    return Alert(kind="anomaly", metric=metric, dims=dims, observed=verdict.observed,
                 expected=verdict.expected, severity=verdict.severity,
                 window=f"{window}m", ts=now.timestamp(), data_ts=minute.timestamp())


def _row(alert: Alert) -> list[object]:
    return [alert.alert_id, datetime.fromtimestamp(alert.ts, timezone.utc), alert.kind, alert.metric,
            alert.dims.get("tenant", ""), alert.dims.get("model_version", ""), alert.severity,
            _dec(alert.observed), _dec(alert.expected), alert.window, json.dumps(alert.dims, sort_keys=True),
            datetime.fromtimestamp(alert.data_ts, timezone.utc)]


def _dec(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("0.000000000001"))


def _minute(ts: datetime) -> datetime:
    return ts.astimezone(timezone.utc).replace(second=0, microsecond=0)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def webhook_payload(alert: Alert) -> dict:
    """What the optional webhook receives: the wire alert plus a one-line summary."""
    dims = ", ".join(f"{k}={v}" for k, v in sorted(alert.dims.items()))
    # Both are dollars (a budget's: spend over the long window and what the budget allows over it)
    multiple = budget_pace(alert.metric, alert.observed, alert.expected)
    pace = "" if multiple is None else f" ({multiple:.1f}x the budget's pace)"
    return {**alert.to_wire(), "text": f"[{alert.severity}] {alert.kind} {alert.metric} ({dims}): "
                                       f"observed ${alert.observed:.3g}, expected ${alert.expected:.3g}{pace}"
                                       + _why_hint(alert),
            "sent_at": time.time()}


def _why_hint(alert: Alert) -> str:
    """For a jump: the command that says what moved (streams/reports/why.py), ready to paste;
    its window ends with the minute the alert is about, so it answers the same whenever it is run."""
    if alert.kind != "anomaly":
        return ""
    tenant = alert.dims.get("tenant")
    scope = f" --tenant {shlex.quote(tenant)}" if tenant and tenant != ALL_TENANTS else ""
    end = datetime.fromtimestamp(alert.data_ts + 60, timezone.utc).isoformat(timespec="seconds")
    return f"; why: reckon costs --why --hours 0.25 --end {end}{scope}"


def webhook_host(url: str) -> str:
    """A webhook URL as logs and `reckon settings` show it: a chat webhook's path is its secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/***"


def _why(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.HTTPStatusError):       # its text repeats the whole URL
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__ + (f" ({exc})" if str(exc) and "://" not in str(exc) else "")


async def deliver(alerts: list[Alert], send: Callable[[bytes, dict], Awaitable[object]], stats: Counter,
                  webhook_url: str = "", client: httpx.AsyncClient | None = None) -> None:
    """Publish alerts (already stored) to `cost-alerts` through `send(key, value)`, then POST each
    to the webhook if one is set. The webhook is best effort: the table and topic have them."""
    for alert in alerts:
        await send(alert.alert_id.encode(), alert.to_wire())
        stats[f"alerts_{alert.kind}"] += 1
    if not alerts or not webhook_url:
        return
    own = client is None
    client = client or httpx.AsyncClient(timeout=5.0)
    try:
        for alert in alerts:
            try:
                response = await client.post(webhook_url, json=webhook_payload(alert))
                response.raise_for_status()
            except httpx.HTTPError as exc:
                stats["alert_webhook_failed"] += 1
                log.warning("alert webhook %s failed: %s", webhook_host(webhook_url), _why(exc))
    finally:
        if own:
            await client.aclose()
