"""The Faust application: topics, the user-state Table, the scoring agent, the cost sink.

Processing is at-least-once: a batch's events are acknowledged (and their offsets
committed) only after the batch's state, recommendations, dead letters and cost event
were handed to the producer. Every sink downstream is idempotent.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
import msgspec
from faust.types import TP
from threadpoolctl import threadpool_limits

from reckon.models.serving.threads import name_this_thread, thread_cpu_seconds
from reckon.streams.core.errors import BrokerError
from reckon.streams.core.settings import Settings
from reckon.streams.core.version import __version__
from reckon.streams.costs.meter import encode_event
from reckon.streams.costs.pricing import PriceSheet
from reckon.streams.kafka import local_state
from reckon.streams.kafka.broker import is_embedded_broker
from reckon.streams.kafka.record_batches import send_keyed
from reckon.streams.kafka.transport import on_batches
from reckon.streams.kafka.user_store import UserStore
from reckon.streams.kafka.watchdog import BrokerWatchdog
from reckon.streams.pipeline.latest import LatestRecommendations
from reckon.streams.pipeline.processor import BatchProcessor
from reckon.streams.pipeline.routing import ModelRuntime
from reckon.streams.pipeline.user_rows import UserRows
from reckon.streams.worker import accounting, api, retraining
from reckon.streams.worker.auth import PageAuth, every_tenant_refusal, unauthorized
from reckon.streams.worker.metrics import CONTENT_TYPE, WorkerMetrics
from reckon.streams.worker.web import CappedRunner, json_errors, undecodable_url, web_host

BATCH_THREAD = "reckon-batch"     # its OS name too (bench/cost_outside.py counts its CPU as batch work)
# The longest the batch thread holds the GIL while the loop waits for it (Python's default
# is 5 ms). A request waits for it at each read and write it makes: `reckon bench api`,
# alternating runs, cached GET p50 / p99 7.7 / 26-32 ms at 5 ms, 5.6-7.3 / 20-25 ms at 1 ms
# (the machine's request floor: p99 11-12 ms); the full path's rate did not move measurably
# (three alternating runs each of 5, 2 and 1 ms: within the runs' noise).
SWITCH_INTERVAL_S = 0.001

# Young-generation threshold, then collections of the younger generation between older ones.
GC_THRESHOLDS = (50_000, 20, 50)

log = logging.getLogger(__name__)


def faust_broker_kwargs(settings: Settings, bootstrap: str) -> dict[str, Any]:
    # reckon:// is Faust's aiokafka transport with a short fetch wait (streams/kafka/transport.py).
    kwargs: dict[str, Any] = {"broker": [f"reckon://{h}" for h in bootstrap.split(",")]}
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=settings.kafka_ssl_context())
    elif settings.kafka_security_protocol == "SSL":
        kwargs["broker_credentials"] = faust.SSLCredentials(settings.kafka_ssl_context())
    return kwargs


class FetchClock:
    """The CPU the consumer's fetch thread used since the last lap: its fetching and decoding
    of the records a batch reads, which that batch's cost counts."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._tid: int | None = None
        self._last = 0.0

    @property
    def tid(self) -> int | None:
        return getattr(self.app, "reckon_fetch_thread", None)

    def lap(self) -> float:
        tid = self.tid
        if tid is None:
            return 0.0
        try:
            now = thread_cpu_seconds(tid)
        except OSError:          # the thread ended: a new one starts its own clock
            return 0.0
        used = now - self._last if tid == self._tid else 0.0
        self._tid, self._last = tid, now
        return max(used, 0.0)


def create_app(settings: Settings, bootstrap: str) -> faust.App:
    # numpy's BLAS ran the nearest-items product on a thread of its own, which no batch's CPU
    # counted and which spins when idle (~20 % of the process's CPU under load, measured by
    # bench/cost_outside.py): one thread, so the batch thread does that work itself.
    threadpool_limits(1, user_api="blas")
    data = settings.data_dir.resolve()
    (data / "faust").mkdir(parents=True, exist_ok=True)
    embedded = is_embedded_broker(bootstrap, settings.kafka_client_kwargs())
    app = faust.App(
        settings.app_id,
        **faust_broker_kwargs(settings, bootstrap),
        store="rocksdb://",
        datadir=str(data / "faust" / settings.worker_name),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_port=settings.web_port,
        web_host=web_host(settings),
        web_bind=settings.web_bind,
        web_application_options={"middlewares": [json_errors]},
        # Short timeouts: a dead member's partitions move on within seconds (embedded mode).
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=20.0,
        broker_commit_interval=settings.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=8192,
        # 4 MiB per partition and fetch, as the raw aiokafka reader in `reckon bench` uses:
        # Faust's 1 MiB default made the consumer wait on fetches (measured 90k -> 120k/s
        # with an empty handler).
        consumer_max_fetch_size=4 * 1024 * 1024,
        # The user store sends a partition's changelog records as one record batch per commit.
        producer_max_batch_size=512 * 1024,
        producer_linger=0.005,
        table_cleanup_interval=60.0,
        logging_config=None,
        # Tansu reports a partition's end offset as its last record *batch's* base offset + 1
        # (measured: 15 records in 2 batches -> end offset 11), so a local store can look
        # "ahead" of the changelog and Faust would refuse to start. Real Kafka keeps the check.
        recovery_consistency_check=not embedded,
    )
    # aiohttp holds any number of connections, and closes one only after an hour without a whole
    # request (its keep-alive default, which also covers one that never finishes its headers):
    # idle or half-sent requests could hold the sockets /metrics and health checks need.
    app.web._runner = CappedRunner(app.web.web_app, settings.web_max_connections, access_log=None,
                                   keepalive_timeout=settings.web_idle_timeout_s)
    # ... and the same bug would make table recovery stop one record batch short.
    app.reckon_end_offsets_from_fetch = embedded  # type: ignore[attr-defined]
    # A worker killed mid-batch may hold local writes its changelog never got: wipe, restore.
    local_state.install(app, data / "faust" / settings.worker_name)
    clicks = app.topic("clicks", "searches", key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    costs = app.topic("cost-events", key_serializer="raw", value_serializer="raw")   # encode_event's JSON
    # key_type/value_type=bytes make Faust's changelog codec raw (a Schema would not:
    # recovery decodes with the table's own serializers): values are the user table's
    # stored form, written and read as bytes by the user store (version 2 is not JSON).
    users = app.Table("user-state", default=None, partitions=settings.partitions, key_type=bytes,
                      value_type=bytes)

    stats: Counter = Counter()
    sheet = PriceSheet.load(settings.price_sheet)
    metrics = WorkerMetrics(stats, settings.worker_name, settings.role, __version__)
    # Only a role that scores loads the model: a sink neither needs a promoted version to
    # start nor holds the model's memory (a GPU's, on a GPU host) for nothing.
    runtime = ModelRuntime(settings) if settings.role in ("all", "scorer") else None
    if runtime is not None:
        stats["model_versions_rejected"] = len(runtime.rejected)
        processor = BatchProcessor(settings, sheet, runtime.scorers_for, ram_gb=settings.reserved_ram_gb,
                                   arm_of=runtime.arm_of)
        metrics.set_models(runtime.device, runtime.versions)
    app.reckon_stats = stats  # type: ignore[attr-defined]
    app.reckon_runtime = runtime  # type: ignore[attr-defined]  # the startup line names its model
    auth = PageAuth(settings)
    # Idle/shared intervals, the ClickHouse sink, alerts and GET /costs (streams/worker/accounting.py).
    costing = accounting.install(app, settings, bootstrap, stats, sheet=sheet,
                                 device=runtime.device if runtime else "cpu", costs_topic=costs, metrics=metrics,
                                 auth=auth)
    if costing.ch is not None:      # the store's owner retrains (on a schedule, or asked by `reckon retrain`)
        retraining.install(app, settings, costing.ch, stats, auth)

    store = UserStore(app, users)
    user_rows = UserRows(store.read, max_rows=settings.state_cache_users)
    fetching = FetchClock(app)
    # A batch is processed on a thread of its own, so the event loop goes on answering
    # requests (a cached GET waited for whole batches: p99 65 ms at half load) and talking
    # to the broker meanwhile. Whatever reads or changes what a batch works on (the model
    # swap, fresh scoring, the state page) holds `processing`, as the batch does.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    batch_thread = ThreadPoolExecutor(1, thread_name_prefix=BATCH_THREAD, initializer=name_this_thread,
                                      initargs=(BATCH_THREAD,))
    processing = asyncio.Lock()
    if runtime is not None:
        latest = LatestRecommendations(settings.recommendation_cache_users)
        api.install(app, api.RecommendationApi(app, settings, auth, users, user_rows.state, runtime, processor, latest,
                                               stats, processing))

        def before_commit() -> Callable[[], Awaitable[None]]:
            # While no batch runs: the states the offsets being committed cover.
            # Copied only (~7 ms for 40k states); they are encoded (~45 ms) once batches
            # go on again: encoding them here was latency for every event arriving meanwhile.
            taken = user_rows.take()

            async def write() -> None:
                # While batches go on: outputs first, then the states that mark their events
                # seen: a crash in between re-emits (idempotent sinks downstream), it never
                # drops a recommendation.
                await app.producer.flush()
                try:
                    written = await store.write(taken.encode())
                finally:
                    user_rows.written()
                if written:
                    stats["state_bytes_written"] += written
                    stats["state_written_at"] = time.time()
            return write

        app.reckon_before_commit = before_commit  # type: ignore[attr-defined]

        async def score(batch: Mapping[TP, Sequence[Any]]) -> None:
            """One fetched batch (all assigned partitions) -> outputs, staged state, cost."""
            runs = list(batch.items())     # aiokafka's records under their TopicPartition
            if store.rebalanced():
                user_rows.forget_clean()
            work = functools.partial(processor.process, runs, user_rows, runtime.device,
                                     fetch_cpu_seconds=fetching.lap())
            try:
                async with processing:
                    out = await asyncio.get_running_loop().run_in_executor(batch_thread, work)
            except Exception as exc:  # not a record (those are dead-lettered alone): stop loudly
                log.exception("scoring batch failed; stopping the worker (offsets not committed)")
                await app.crash(exc)
                raise
            if out.cost_event is not None:
                costing.observe(out.cost_event)  # before any await: intervals close between batches
            # As whole record batches: a send per recommendation cost more than scoring it
            # when every event was another user's. Faust flushes the producer before it
            # commits offsets, so a committed event's outputs are always delivered.
            producer = app.producer._ensure_producer()   # aiokafka's
            await send_keyed(producer, "recommendations", out.recommendations)
            latest.update(out.latest)       # readable once handed to the producer, as the topic's copy
            for dead in out.dead_letters:
                key, value, headers = dead.sendable()
                await app.producer.send("events-dlq", key, value, None, None, headers)
            # Snapshotted by the next offset commit, which writes it (RocksDB + changelog) first.
            user_rows.stage(out.changed, out.changed_partitions)
            if out.cost_event is not None:
                await costs.send(key=settings.worker_name.encode(), value=encode_event(out.cost_event))
                stats["cost_events_sent"] += 1
            stats["consumed"] += sum([len(records) for _, records in runs])
            if "first_batch_at" not in stats:    # rates are measured from the end of the first batch
                stats["first_batch_at"], stats["first_batch_consumed"] = time.time(), stats["consumed"]
            stats["last_batch_at"] = time.time()
            stats["batches"] += 1
            stats.update(out.counts)

        on_batches(app, clicks, score, fetch_wait_ms=settings.batch_wait_ms, max_records=settings.max_batch)
        metrics.lag = lambda: {(tp.topic, tp.partition): behind
                               for tp, behind in app.consumer.lag(frozenset(clicks.topics)).items()}

        @app.task
        async def freeze_startup_heap() -> None:
            # Everything built at start (Faust, the model, the catalog) is long-lived: out of
            # the collector's sight, a full collection walks only what batches allocate.
            gc.freeze()
            # Batches allocate ~10 containers per event that die young by refcount (no
            # cycles); at the default 700-allocation threshold the collector ran dozens of
            # times per batch and its full collections walked every cached user state
            # (measured in-process, 8,000-event batches of distinct users: 0.66 -> 0.09 µs
            # of collection per event, 435 -> 2 collections per 100k events).
            gc.set_threshold(*GC_THRESHOLDS)

        @app.timer(1.0)
        async def watch_registry() -> None:
            # Load off the loop, swap between batches: each batch is scored by the versions it started with.
            try:
                scorer = await asyncio.to_thread(runtime.load_promoted)
            except OSError as exc:   # out of file descriptors, a flaky disk: keep serving, look again
                log.warning("reading the model registry failed (%s); the served version stays", exc)
                return
            if scorer is not None:
                async with processing:
                    runtime.swap(scorer)
                metrics.set_models(runtime.device, runtime.versions)
            stats["model_versions_rejected"] = len(runtime.rejected)

    @app.on_rebalance_complete.connect
    async def rebalanced(sender: Any, **kwargs: Any) -> None:
        fetching.lap()           # joining and recovering are no batch's reading
        stats["fetch_thread"] = fetching.tid or 0   # for `reckon bench costs`, which reads its /proc times

    broker_watch = BrokerWatchdog(bootstrap, ("clicks", "searches", "cost-events"),
                                  settings.kafka_client_kwargs())

    @app.timer(5.0)
    async def broker_watchdog() -> None:
        try:
            await broker_watch.check()
        except BrokerError as exc:
            log.error("%s", exc)
            stats["broker_data_lost"] = 1
            await app.crash(exc)

    @app.page("/stats")
    async def stats_page(web: Any, request: Any) -> Any:
        model = ({"model_version": runtime.current_version, "device": runtime.device,
                  "rejected_versions": runtime.rejected} if runtime is not None
                 else {"model_version": None, "device": None, "rejected_versions": {}})   # a sink scores nothing
        return web.json({**stats, **model, "worker": settings.worker_name, "time": time.time()})

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        """Open without tokens (Prometheus' convention); with them, RECKON_WEB_TOKEN's only:
        it carries every tenant's cost."""
        return (every_tenant_refusal(auth, web, request, "/metrics")
                or web.bytes(metrics.render(), content_type=CONTENT_TYPE))

    @app.page("/state/{tenant}/{user}")
    async def state_page(web: Any, request: Any, tenant: str, user: str) -> Any:
        """Read-only: a user's state as this worker holds it (only for partitions it owns),
        for a caller whose token covers the tenant."""
        scope = auth.scope(request.headers.get("Authorization"))
        if scope is None:
            return unauthorized(web)
        invalid = undecodable_url(request) or api.check_user(settings, tenant, user)   # as /recommendations
        if invalid is not None:
            return web.json({"error": f"tenant or user: {invalid}"}, status=400)
        if not scope.allows(tenant):
            return web.json({"error": "this token does not cover that tenant"}, status=403)
        async with processing:         # a batch changes states in place
            try:
                state = user_rows.state((tenant, user))   # newer than RocksDB until a flush
            except ValueError as exc:
                return web.json({"error": f"this user's stored state cannot be read: {exc}"}, status=500)
            body = msgspec.json.encode({"tenant": tenant, "user_id": user, "state": state})
        return web.bytes(body, content_type="application/json", status=200 if state else 404)

    return app
