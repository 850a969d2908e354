"""Cost accounting wired into a worker: the one place streams/worker/app.py calls into.

Scorer role: every batch's cost event goes through `observe`; a timer emits the idle and
shared cost of each closed interval to `cost-events`. Sink role (the store owner in
embedded mode): the sink consumer, price mirroring, the alert timer, and a read-only
`GET /costs` that answers `reckon costs` while this process holds the chdb store.

Shutdown order matters and is explicit here: the scorer has stopped (Faust stops the
consumer first), then the last partial interval is emitted and the producer flushed,
then the sink drains the topics to their end and commits, so the final idle rows land.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import faust

from reckon.streams.clickhouse.client import ClickHouse, connect
from reckon.streams.clickhouse.migrations import migrate
from reckon.streams.core.errors import ClickHouseError, PriceSheetError, ReckonError, StoreLockedError
from reckon.streams.core.settings import Settings
from reckon.streams.costs.alert_engine import AlertConfig, AlertEngine, deliver
from reckon.streams.costs.alerts import BurnConfig, DetectorConfig
from reckon.streams.costs.idle import IntervalAccountant, Reserved
from reckon.streams.costs.meter import encode_event
from reckon.streams.costs.pricing import PriceSheet
from reckon.streams.costs.repricing import sync_prices
from reckon.streams.reports.report import ReportRequest, build_report
from reckon.streams.sink.consumer import SinkConsumer
from reckon.streams.sink.rows import TOPIC_TABLES
from reckon.streams.sink.storage import StorageMeter
from reckon.streams.worker.auth import PageAuth, unauthorized
from reckon.streams.worker.metrics import WorkerMetrics
from reckon.streams.worker.web import local_url, undecodable_url

log = logging.getLogger(__name__)


def reserved_for(settings: Settings, device: str) -> Reserved:
    gpus = settings.reserved_gpus if settings.reserved_gpus is not None else (1.0 if device.startswith("cuda") else 0.0)
    return Reserved(vcpus=settings.reserved_vcpus, ram_gb=settings.reserved_ram_gb, gpus=gpus)


def alert_config(settings: Settings) -> AlertConfig:
    return AlertConfig(
        detector=DetectorConfig(window=settings.alert_window_minutes, warmup=settings.alert_warmup_minutes,
                                z=settings.alert_z, min_ratio=settings.alert_min_ratio),
        burn=BurnConfig(short_minutes=settings.burn_short_minutes, long_minutes=settings.burn_long_minutes,
                        warning=settings.burn_warning, critical=settings.burn_critical),
        min_recs=settings.alert_min_recs,
        daily_budget_usd=tuple(sorted(settings.daily_budget_usd.items())))


@dataclass
class Accounting:
    settings: Settings
    stats: Counter
    metrics: WorkerMetrics
    accountant: IntervalAccountant | None = None
    sink: SinkConsumer | None = None
    ch: ClickHouse | None = None

    def observe(self, cost_event: dict) -> None:
        """Call right after BatchProcessor.process, before any await (see streams/costs/idle.py)."""
        if self.accountant is not None:
            self.accountant.observe(cost_event)
        self.metrics.observe_cost_event(cost_event)


def install(app: faust.App, settings: Settings, bootstrap: str, stats: Counter, *, sheet: PriceSheet,
            device: str, costs_topic: Any, metrics: WorkerMetrics, auth: PageAuth) -> Accounting:
    """Register cost accounting's timers, tasks, pages and shutdown hook on `app`."""
    acc = Accounting(settings, stats, metrics)
    worker_key = settings.worker_name.encode()

    async def emit(events: list[dict]) -> None:
        for event in events:
            await costs_topic.send(key=worker_key, value=encode_event(event))
            metrics.observe_cost_event(event)
            stats["cost_events_sent"] += 1
            stats[f"{event['kind']}_events_sent"] += 1

    if settings.role in ("all", "scorer"):
        acc.accountant = IntervalAccountant(sheet, reserved_for(settings, device), settings.worker_name,
                                            device, settings.cost_interval_s)

        @app.timer(min(settings.cost_interval_s, 1.0))
        async def emit_intervals() -> None:
            if acc.accountant is not None:
                await emit(acc.accountant.close_due())

    if settings.role in ("all", "sink"):
        try:
            acc.ch = ch = connect(settings.clickhouse_url)
        except StoreLockedError as exc:      # another worker sinks into this embedded store
            raise ReckonError(f"the embedded ClickHouse store {exc.path} is held by {exc.holder}, which sinks into "
                              f"it: run this worker with RECKON_ROLE=scorer (an embedded store takes one sinking "
                              "worker), or give it a store of its own") from None
        migrate(ch)
        sync_prices(ch, sheet)
        topics = TOPIC_TABLES if settings.sink_logs else {"cost-events": TOPIC_TABLES["cost-events"]}
        acc.sink = sink = SinkConsumer(
            ch, bootstrap, topics, group_id=settings.sink_group_id, batch_rows=settings.sink_batch_rows,
            flush_ms=settings.sink_flush_ms, stats=stats, default_tenant=settings.default_tenant,
            tenants=frozenset(settings.tenants) or None,
            client_kwargs=settings.kafka_client_kwargs(), storage=StorageMeter(ch, sheet, settings.worker_name))
        _install_sink_tasks(app, settings, acc, sink, ch)
        metrics.sink = sink.health
        _install_alerts(app, settings, ch, stats)
        _install_costs_page(app, ch, auth, settings.attribution_window_s)

    else:
        @app.page("/costs")
        async def no_costs_page(web: Any, request: Any) -> Any:
            # a bare "Not Found" read as a wrong URL
            return web.json({"error": "this worker scores only (RECKON_ROLE=scorer) and holds no cost store: ask a "
                                      "worker with RECKON_ROLE=all or sink"}, status=404)

    @app.on_before_shutdown.connect
    async def _finish(sender: Any, **kwargs: Any) -> None:
        if acc.accountant is not None:
            await emit(acc.accountant.close_all())
            await app.producer.flush()
        if acc.sink is not None:
            await acc.sink.stop()

    return acc


def _install_sink_tasks(app: faust.App, settings: Settings, acc: Accounting, sink: SinkConsumer,
                        ch: ClickHouse) -> None:
    @app.task
    async def start_sink() -> None:
        await sink.start()
        ch.advertise(local_url(settings))

    @app.timer(1.0)
    async def watch_sink() -> None:
        failed = sink.failed
        if failed is not None:   # a bug in the sink loop: stop loudly (offsets stay uncommitted)
            acc.sink = None
            log.error("cost sink failed: %r", failed)
            await app.crash(failed)


def _install_alerts(app: faust.App, settings: Settings, ch: ClickHouse, stats: Counter) -> None:
    engine = AlertEngine(ch, alert_config(settings))
    alerts_topic = app.topic("cost-alerts", key_serializer="raw", value_serializer="json")

    @app.timer(settings.alert_interval_s)
    async def evaluate_alerts() -> None:
        try:
            alerts = await asyncio.to_thread(engine.evaluate, datetime.now(timezone.utc))
        except ClickHouseError as exc:   # alerts must not take the worker down; the sink retries
            stats["alert_errors"] += 1
            log.warning("alert evaluation failed: %s", exc)
            return

        async def send(key: bytes, value: dict) -> None:
            await alerts_topic.send(key=key, value=value)

        await deliver(alerts, send, stats, settings.alert_webhook_url.get_secret_value())


# Reports run on their own threads, so that callers cannot queue the sink's flushes, the
# model watch and alerts behind them on the default pool; past this many at once: 503.
MAX_REPORTS = 4
# Sections over every tenant (cost by kind, ClickHouse tables, the all-time audit): left out of
# an answer to a tenant's token, which reads only its own tenant's figures.
FLEET_SECTIONS = ("by_component", "clickhouse", "audit")


def _install_costs_page(app: faust.App, ch: ClickHouse, auth: PageAuth, attribution_window_s: int) -> None:
    reports = ThreadPoolExecutor(MAX_REPORTS, thread_name_prefix="reckon-report")
    running = 0

    @app.page("/costs")
    async def costs_page(web: Any, request: Any) -> Any:
        """Read-only cost report (the same JSON as `reckon costs --json`); a tenant's token
        reads that tenant's costs only (no FLEET_SECTIONS)."""
        scope = auth.scope(request.headers.get("Authorization"))
        if scope is None:
            return unauthorized(web)
        undecodable = undecodable_url(request)
        if undecodable is not None:      # tenant=%FF would read as a tenant named U+FFFD
            return web.json({"error": undecodable}, status=400)
        repeated = sorted({k for k in request.query.keys() if len(request.query.getall(k)) > 1})
        if repeated:      # which of two tenants or windows was meant is not ours to guess
            return web.json({"error": f"parameter {repeated[0]!r} given more than once"}, status=400)
        try:
            report_request = ReportRequest.from_query(dict(request.query), attribution_window_s)
        except ValueError as exc:
            return web.json({"error": str(exc)}, status=400)
        if scope.tenant is not None:
            if report_request.tenant not in (None, scope.tenant):
                return web.json({"error": "this token does not cover that tenant"}, status=403)
            report_request = dataclasses.replace(report_request, tenant=scope.tenant)
        nonlocal running
        if running >= MAX_REPORTS:
            return web.json({"error": f"{MAX_REPORTS} cost reports are being built; ask again shortly"},
                            status=503, headers={"Retry-After": "1"})
        running += 1
        try:
            report = await asyncio.get_running_loop().run_in_executor(reports, build_report, ch, report_request)
        except PriceSheetError as exc:       # an unknown sheet_version: the caller's mistake
            return web.json({"error": str(exc)}, status=400)
        except ClickHouseError as exc:
            return web.json({"error": str(exc)}, status=503)
        finally:
            running -= 1
        if scope.tenant is not None:
            report = {k: v for k, v in report.items() if k not in FLEET_SECTIONS}
        return web.json(report)
