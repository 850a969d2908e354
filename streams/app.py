"""The Faust application: topics, the user-state Table, the scoring agent, the cost sink.

Processing is at-least-once: a batch's events are acknowledged (and their offsets
committed) only after the batch's state, recommendations, dead letters and cost event
were handed to the producer. Every sink downstream is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import weakref

import faust
from faust.streams import _current_event

from streams import accounting
from streams.broker import is_embedded_broker
from streams.candidates import CandidateIndex
from streams.errors import BrokerError
from streams.watchdog import BrokerWatchdog
from streams.routing import ModelRuntime
from streams.metrics import render as render_metrics
from streams.pricing import PriceSheet
from streams.processor import BatchProcessor, InRecord
from streams.settings import Settings

log = logging.getLogger(__name__)


def faust_broker_kwargs(settings: Settings, bootstrap: str) -> dict[str, Any]:
    # reckon:// is Faust's aiokafka transport with a short fetch wait (streams/transport.py).
    kwargs: dict[str, Any] = {"broker": [f"reckon://{h}" for h in bootstrap.split(",")]}
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=_ssl_context(settings) if settings.kafka_security_protocol == "SASL_SSL" else None)
    elif settings.kafka_security_protocol == "SSL":
        kwargs["broker_credentials"] = faust.SSLCredentials(_ssl_context(settings))
    return kwargs


def _ssl_context(settings: Settings) -> Any:
    import ssl

    return ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)


def write_states(table: faust.Table, states: dict[str, dict], last_record: dict[str, int],
                 events: list[faust.types.EventT]) -> None:
    """One Table write per user per batch.

    Faust's RocksDB store and changelog take the partition from the *current event*,
    which `take_events()` leaves unset. We set it, per key, to that user's last event of
    the batch: the state lands in the source partition's store and changelog partition,
    exactly as a per-event write would, without use_partitioner's re-hashing.
    """
    for user, state in states.items():
        token = _current_event.set(weakref.ref(events[last_record[user]]))
        try:
            table[user.encode()] = state
        finally:
            _current_event.reset(token)


def create_app(settings: Settings, bootstrap: str) -> faust.App:
    data = settings.data_dir.resolve()
    (data / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        **faust_broker_kwargs(settings, bootstrap),
        store="rocksdb://",
        datadir=str(data / "faust" / settings.worker_name),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_port=settings.web_port,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        # Short timeouts: a dead member's partitions move on within seconds (embedded mode).
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=20.0,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=8192,
        producer_linger=0.005,
        table_cleanup_interval=60.0,
        logging_config=None,
        # Tansu reports a partition's end offset as its last record *batch's* base offset + 1
        # (measured: 15 records in 2 batches -> end offset 11), so a local store can look
        # "ahead" of the changelog and Faust would refuse to start. Real Kafka keeps the check.
        recovery_consistency_check=not is_embedded_broker(bootstrap, settings.kafka_client_kwargs()),
    )
    clicks = app.topic("clicks", "searches", key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    costs = app.topic("cost-events", key_serializer="raw", value_serializer="json")
    # key_type=bytes makes Faust use raw keys for the changelog too (a Schema would not:
    # recovery decodes with the table's own serializers); values are JSON.
    users = app.Table("user-state", default=None, partitions=settings.partitions, key_type=bytes)

    stats: Counter = Counter()
    runtime = ModelRuntime(settings)
    processor = BatchProcessor(settings, PriceSheet.load(settings.price_sheet),
                               runtime.scorer_for, CandidateIndex(), ram_gb=settings.reserved_ram_gb)
    app.reckon_stats = stats  # type: ignore[attr-defined]
    # Idle/shared intervals, the ClickHouse sink, alerts and GET /costs (streams/accounting.py).
    costing = accounting.install(app, settings, bootstrap, stats, sheet=processor.sheet,
                                 device=runtime.device, costs_topic=costs)

    if settings.role in ("all", "scorer"):
        @app.agent(clicks, name="score")
        async def score(stream: faust.Stream) -> None:
            async for events in stream.take_events(settings.batch_size, settings.batch_wait_ms / 1000):
                records = [InRecord(e.message.topic, e.message.key, e.message.value,
                                    e.message.timestamp) for e in events]
                try:
                    out = processor.process(records, lambda user: users.get(user.encode()),
                                            runtime.device)
                except Exception as exc:  # a bug, not bad input (that is dead-lettered): stop loudly
                    log.exception("scoring batch failed; stopping the worker (offsets not committed)")
                    await app.crash(exc)
                    return
                if out.cost_event is not None:
                    costing.observe(out.cost_event)  # before any await: intervals close between batches
                # Straight to the producer's batch accumulator: Faust's per-message publish
                # path costs more than scoring. Faust flushes the producer before it commits
                # offsets, so a committed event's outputs are always delivered.
                send = app.producer.send
                for key, value in out.recommendations:
                    await send("recommendations", key, value, None, None, None)
                for key, value, headers in out.dead_letters:
                    await send("events-dlq", key, value, None, None, headers)
                # State (and its changelog, which carries the dedup ids) only after the outputs
                # are queued: a crash must not leave "seen" durable while a recommendation is not.
                write_states(users, out.states, out.last_record, events)
                if out.cost_event is not None:
                    await costs.send(key=settings.worker_name.encode(), value=out.cost_event)
                    stats["cost_events_sent"] += 1
                stats["consumed"] += len(records)
                stats.setdefault("first_batch_at", time.time())
                stats["last_batch_at"] = time.time()
                stats["batches"] += 1
                stats.update(out.counts)

        @app.timer(1.0)
        async def watch_registry() -> None:
            # Load off the loop, swap on it: batches run without awaits, so a swap never
            # lands inside one and each batch is scored by the versions it started with.
            scorer = await asyncio.to_thread(runtime.load_promoted)
            if scorer is not None:
                runtime.swap(scorer)

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
        return web.json({**stats, "model_version": runtime.current_version, "device": runtime.device,
                         "worker": settings.worker_name, "time": time.time()})

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(render_metrics(stats, settings.worker_name),
                         content_type="text/plain; version=0.0.4")

    @app.page("/state/{user}")
    async def state_page(web: Any, request: Any, user: str) -> Any:
        """Read-only: a user's state as this worker holds it (only for partitions it owns)."""
        state = users.get(user.encode())
        return web.json({"user_id": user, "state": state}, status=200 if state else 404)

    return app
