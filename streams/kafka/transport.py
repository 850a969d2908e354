"""Faust's aiokafka transport with a batch path for Reckon's event topics.

Four changes to Faust's own transport, registered as the `reckon://` broker scheme (entry
point `faust.transports`):

1. Fetch wait. Faust hard-codes `fetch_max_wait_ms=1500`. A broker that does not answer a
   long-poll fetch early when data arrives (the embedded Tansu broker, measured) then adds
   up to 1.5 s to event-to-recommendation latency. Reckon uses `RECKON_BATCH_WAIT_MS`.

2. Batches below the Stream layer. Faust hands every message to a per-message callback
   (Conductor -> channel queue -> Stream -> Event -> ack), about 250 µs of Python per event
   (bench/INGEST.md). For the topics registered with `on_batches`, this consumer hands each
   fetched record map to one coroutine instead, then acknowledges the whole batch in
   Faust's own offset book-keeping (`_acked`, gaps, read offsets), so Faust's commit loop,
   rebalancing and recovery work unchanged: offsets are committed only after the handler
   returned and the producer was flushed (Faust flushes before every commit). A rebalance
   waits for a running batch (`wait_empty`). Other topics (changelogs, other agents) take
   Faust's normal path.

3. A hook before every offset commit (`app.reckon_before_commit`), called while no batch
   runs, with the offsets to commit taken in the same critical section: the user store
   snapshots the states it staged there (streams/kafka/user_store.py). The hook returns a
   coroutine function, awaited after the lock is released and before the offsets are
   committed: the snapshot is written then, so committed offsets never get ahead of
   durable state and batches do not wait for the writes.

4. End offsets on the embedded Tansu broker, which answers ListOffsets one record batch
   short: table recovery reads changelogs up to the fetch high watermark instead.

5. Records as fetched. For the batch topics, aiokafka's fetcher hands over its own parsed
   records (offset, timestamp, key, value, headers) instead of building a ConsumerRecord
   per message in Python: 0.6 µs instead of 1.5-2.2 µs per record (bench/INGEST.md). The
   handler gets them under their TopicPartition, which carries topic and partition.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

import faust
from aiokafka.consumer import fetcher as aiokafka_fetcher
from faust.exceptions import ProducerSendError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

FETCH_MAX_WAIT_MS = 20
BatchHandler = Callable[[Mapping[TP, Sequence[Any]]], Awaitable[None]]


def on_batches(app: faust.App, topic: faust.TopicT, handler: BatchHandler, fetch_wait_ms: int,
               max_records: int) -> None:
    """Route every fetched batch of `topic`'s partitions to `handler(records_by_tp)`.

    Records are aiokafka's parsed records (offset, timestamp in ms, key, value, headers),
    in offset order, under their TopicPartition. The handler must finish the batch's side
    effects (state, produced messages) before it returns: its offsets are then
    acknowledged and committed with Faust's next commit.
    """
    app.topics.add(topic)  # subscribes the consumer group to the topic, as an agent would
    _BATCH_TOPICS.update(topic.topics)
    app.conf.broker_max_poll_records = max_records
    app.reckon_batch_route = (frozenset(topic.topics), handler)  # type: ignore[attr-defined]
    app.reckon_fetch_wait_ms = fetch_wait_ms  # type: ignore[attr-defined]


# Topics whose records reach a batch handler, and only it: nothing else reads them, so
# they skip the ConsumerRecord. Per process, as aiokafka's fetcher module is.
_BATCH_TOPICS: set[str] = set()


class _PartitionRecords(aiokafka_fetcher.PartitionRecords):
    """aiokafka's PartitionRecords (CRC checks, transactions, control batches unchanged),
    yielding a batch topic's records as parsed."""

    def _consumer_record(self, tp: Any, record: Any) -> Any:
        if tp.topic in _BATCH_TOPICS:
            return record
        return super()._consumer_record(tp, record)


# The fetcher builds PartitionRecords by this module-level name.
aiokafka_fetcher.PartitionRecords = _PartitionRecords  # type: ignore[misc]


# Faust's service chatter from these subclasses logs as Faust's (RECKON_LOG_LEVEL leaves it at WARNING).
_FAUST_LOGGER = logging.getLogger("faust.transport.reckon")


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    logger = _FAUST_LOGGER
    async def on_thread_started(self) -> None:
        # The OS thread that fetches and decodes records: the worker counts its CPU into the
        # batches it reads (streams/worker/app.py).
        self.app.reckon_fetch_thread = threading.get_native_id()  # type: ignore[attr-defined]
        await super().on_thread_started()

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by aiokafka's Fetcher at start()
        consumer._fetch_max_wait_ms = getattr(transport.app, "reckon_fetch_wait_ms", FETCH_MAX_WAIT_MS)
        return consumer

    async def _highwaters(self, partitions: Any) -> Any:
        """End offsets; Faust's table recovery reads each changelog partition up to these.

        Tansu answers ListOffsets(latest) with its last record batch's base offset + 1, so a
        table restored from its changelog missed the rest of that batch (the newest states).
        A fetch response's high watermark is right, on Tansu and on Kafka alike; the extra
        fetch is only made where `create_app` says the broker is the embedded Tansu.
        """
        ends = dict(await super()._highwaters(partitions))
        if not getattr(self.app, "reckon_end_offsets_from_fetch", False) or not any(ends.values()):
            return ends
        return await _fetched_highwaters(self, ends)


class Consumer(faust_aiokafka.Consumer):
    logger = _FAUST_LOGGER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch_running = asyncio.Lock()

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        generation = self.app.consumer_generation_id
        records, active = await super()._wait_next_records(timeout)
        route = getattr(self.app, "reckon_batch_route", None)
        if not records or route is None or not self.flow_active or self.should_stop:
            return records, active  # Faust's getmany handles (or seeks back) the rest
        topics, handler = route
        if self.app.consumer_generation_id != generation:
            # A rebalance finished while this fetch was out: its partitions may have moved.
            # Faust's getmany drops such records too; the new owner reads from the commit.
            return {tp: recs for tp, recs in records.items() if tp.topic not in topics}, active
        batch: dict[TP, list[Any]] = {}
        rest: dict[TP, Any] = {}
        for tp, recs in records.items():
            if tp.topic not in topics:
                rest[tp] = recs
            elif active is None or tp in active or tp in self._buffered_partitions:
                fresh = self._unread(tp, recs)
                if fresh:
                    batch[tp] = fresh
            # else: a paused partition (recovery, rebalance): dropped, as Faust's getmany does
        if batch:
            async with self._batch_running:
                await handler(batch)
                await self._ack_batch(batch)
            for tp in batch:
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            # No commit every N acks here, only Faust's interval (RECKON_COMMIT_INTERVAL_S): each
            # commit writes every user staged since the last one, so with live traffic (a
            # user per event) a commit per 10,000 events was a state write per event.
        return rest, active

    def lag(self, topics: frozenset[str]) -> dict[TP, int]:
        """Records behind the end of each assigned partition of `topics`: high watermark (from
        the last fetch) minus the next offset to handle. Partitions not fetched yet are left out."""
        out = {}
        for tp in self.assignment():
            if tp.topic not in topics:
                continue
            end = self.highwater(tp)
            read, committed = self._read_offset[tp], self._committed_offset[tp]
            position = read + 1 if read is not None else committed
            if end is not None and position is not None:
                out[tp] = max(end - position, 0)
        return out

    def _unread(self, tp: TP, recs: list[Any]) -> list[Any]:
        # Faust's drain loop skips records below the partition's read offset (already seen).
        read = self._read_offset[tp]
        if read is None or recs[0].offset >= read:
            return recs
        return [r for r in recs if r.offset >= read]

    async def _ack_batch(self, batch: Mapping[TP, list[Any]]) -> None:
        """Faust's `ack()` for a whole batch: offsets into `_acked` (what commit reads),
        holes left by compaction or transaction markers into `_gap`."""
        for tp, recs in batch.items():
            offsets = [r.offset for r in recs]
            previous = self._read_offset[tp]
            for start, end in _holes(previous, offsets):
                await self._add_gap(tp, start, end)
            committed = self._committed_offset[tp]
            if committed is not None and offsets[0] < committed:
                offsets = [o for o in offsets if o >= committed]
            with ack_lock:
                self._acked[tp].extend(offsets)
                self._acked_index[tp].update(offsets)
                self._n_acked += len(offsets)
            self._read_offset[tp] = recs[-1].offset
        notify(self._waiting_for_ack)

    async def _commit_tps(self, tps: Any, start_new_transaction: bool) -> bool:
        """Faust's `_commit_tps`, with the app's `reckon_before_commit` (the user store's
        snapshot of staged states) called first. The offsets to commit are taken in the
        same critical section, so they cover exactly the batches in the snapshot; writing
        it and the commit round trip run while the next batches are handled."""
        before = getattr(self.app, "reckon_before_commit", None)
        if before is None:
            return await super()._commit_tps(tps, start_new_transaction)
        async with self._batch_running:
            write = before()
            offsets = self._filter_committable_offsets(tps)
        await write()
        if not offsets:
            return False
        try:
            await self._handle_attached(offsets)
        except ProducerSendError as exc:
            await self.crash(exc)
            return False
        return await self._commit_offsets(offsets, start_new_transaction=start_new_transaction)

    async def wait_empty(self) -> None:
        # Called on rebalance and shutdown before the final commit: a batch in flight
        # finishes (and is acknowledged) first.
        async with self._batch_running:
            pass
        await super().wait_empty()


def _holes(previous: int | None, offsets: list[int]) -> Iterator[tuple[int, int]]:
    """(first, last) missing offsets, inclusive, before or inside a batch: compaction and
    transaction markers leave such holes, and Faust's commit needs them as gaps."""
    if previous is not None and offsets[0] - previous > 1:
        yield previous + 1, offsets[0] - 1
    if offsets[-1] - offsets[0] + 1 != len(offsets):
        for a, b in zip(offsets, offsets[1:]):
            if b - a > 1:
                yield a + 1, b - 1


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


async def _fetched_highwaters(thread: Any, ends: dict) -> dict:
    """`ends` corrected upward with the high watermark a fetch reports, per partition."""
    import aiokafka
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth, server_list

    transport, conf = thread.transport, thread.app.conf
    probe = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=server_list(transport.url, transport.default_port), enable_auto_commit=False,
        fetch_max_wait_ms=20, **credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context))
    await probe.start()
    try:
        tps = [tp for tp, end in ends.items() if end]
        probe.assign(tps)
        for tp in tps:
            probe.seek(tp, ends[tp] - 1)
        for _ in range(50):
            if all(probe.highwater(tp) is not None for tp in tps):
                break
            await probe.getmany(*tps, timeout_ms=100, max_records=1)
        return {tp: max(end, probe.highwater(tp) or 0) if end else end for tp, end in ends.items()}
    finally:
        await probe.stop()
