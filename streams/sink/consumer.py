"""The sink loop: Kafka -> ClickHouse with offsets committed only after a successful insert.

A plain aiokafka consumer in its own group (`sink_group_id`) rather than a Faust agent:
Faust's `take()` acknowledges a batch when its loop body exits, even by an exception,
so a failed insert could still be committed. Here the sink owns its offsets:

    poll -> buffer rows (bounded by rows and by age) -> write (idempotent, retried with
    backoff while ClickHouse is unavailable, partitions paused meanwhile so the consumer
    stays in its group) -> the flush's ClickHouse bytes and rows as cost rows, when given a
    StorageMeter (streams/sink/storage.py) -> dead-letter what could not be stored ->
    commit exactly the offsets written.

A message that cannot become rows, or whose rows ClickHouse refuses for their values, is
dead-lettered alone to `events-dlq` (stage sink_rows or sink_insert, with its topic,
partition and offset) before the offsets are committed, and the rest of the buffer is
stored: no message can make the sink retry a buffer forever. Only ClickHouse itself
failing stalls it (nothing set aside, nothing lost).

On revocation the buffer is flushed once and committed, or dropped (the new owner
re-reads it; the write is idempotent). `stop` drains the topics to their high watermark
first, so cost events produced just before shutdown (the last idle interval) are stored;
if ClickHouse is down then, it gives up after `drain_s` without committing (nothing lost:
the next start re-reads).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from reckon.streams.clickhouse.client import ClickHouse
from reckon.streams.core.errors import ClickHouseError, ClickHouseUnavailable
from reckon.streams.pipeline.dead_letters import DeadLetter
from reckon.streams.sink.rows import BadMessage, Rows, Source, Written, rows_from_message, write
from reckon.streams.sink.storage import StorageMeter, flush_id

DEAD_LETTERS = "events-dlq"

log = logging.getLogger(__name__)

STALL_BACKOFF_S = 30.0   # a non-retryable ClickHouse error stalls the sink (no loss), loudly


@dataclass(frozen=True)
class SinkHealth:
    """What makes a stalled sink visible: backlog grows, the oldest unwritten row ages."""

    backlog: dict[tuple[str, int], int]   # (topic, partition) -> messages in Kafka not yet stored
    buffered_rows: int                    # rows waiting for their insert
    oldest_unwritten_age_s: float         # how long the oldest of them has waited (0: none)
    last_flush_at: float | None           # unix time of the last insert + commit



class SinkConsumer:
    def __init__(self, ch: ClickHouse, bootstrap: str, topics: Mapping[str, str], *, group_id: str,
                 batch_rows: int, flush_ms: int, stats: Counter | None = None,
                 default_tenant: str = "default", tenants: Collection[str] | None = None, max_backoff_s: float = 5.0,
                 client_kwargs: dict[str, Any] | None = None, session_timeout_ms: int = 6_000,
                 storage: StorageMeter | None = None) -> None:
        self.ch = ch
        self.storage = storage
        self.topics = dict(topics)     # topic -> table (reckon.streams.sink.rows.TOPIC_TABLES in a worker)
        self.batch_rows = batch_rows
        self.flush_s = flush_ms / 1000
        self.stats = stats if stats is not None else Counter()
        self.default_tenant = default_tenant
        self.tenants = tenants       # RECKON_TENANTS: a click of another tenant is the worker's dead letter, not a row
        self.max_backoff_s = max_backoff_s
        self._consumer_kwargs: dict[str, Any] = dict(
            bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
            # Short timeouts: the embedded broker ignores LeaveGroup, so a restarted sink waits
            # for its predecessor's session to expire before it is assigned anything.
            auto_offset_reset="earliest", session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=1_000,
            rebalance_timeout_ms=3_000, max_poll_interval_ms=60_000, **(client_kwargs or {}))
        self._producer_kwargs: dict[str, Any] = dict(bootstrap_servers=bootstrap, acks="all",
                                                     **(client_kwargs or {}))
        self._consumer: AIOKafkaConsumer = None  # type: ignore[assignment]  # made in start(): needs a loop
        self._producer: AIOKafkaProducer = None  # type: ignore[assignment]  # dead letters
        self._rows = Rows()
        self._offsets: dict[TopicPartition, int] = {}   # next offset to commit, per partition
        self._oldest: float | None = None                # monotonic time the buffer got its first message
        self._newest_ts_ms = 0                           # newest message timestamp in the buffer
        self._messages: Counter = Counter()              # buffered messages per table (rows built)
        self._dead: list[DeadLetter] = []                # to send before the offsets are committed
        self._unstored: dict[TopicPartition, int] = {}   # first offset not yet stored, per partition seen
        self._last_flush_at: float | None = None
        self._inserted: dict[str, list[list[object]]] = {}   # rows this flush stored, per table
        self._storage_rows: list[list[object]] | None = None  # this flush's storage cost, once measured
        self._lock = asyncio.Lock()                      # flush vs. a rebalance callback
        self._stopping = False
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(**self._producer_kwargs)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(**self._consumer_kwargs)
        self._consumer.subscribe(list(self.topics), listener=_Revoke(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="reckon-sink")

    async def stop(self, drain_s: float = 10.0) -> None:
        """Stop polling, drain what is already in the topics (bounded by `drain_s`), flush, commit."""
        self._stopping = True
        if self._consumer is None:
            return
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)   # a failed loop was reported already
        try:
            await self._drain(time.monotonic() + drain_s)
        finally:
            await self._consumer.stop()
            await self._producer.stop()

    @property
    def failed(self) -> BaseException | None:
        """The exception that ended the loop, if one did (a bug: the caller should crash)."""
        if self._task is None or not self._task.done() or self._task.cancelled():
            return None
        return self._task.exception()

    async def _run(self) -> None:
        while not self._stopping:
            batch = await self._consumer.getmany(timeout_ms=min(200, int(self.flush_s * 1000) or 1),
                                                 max_records=self.batch_rows)
            self._add(batch)
            if self._due():
                await self.flush(deadline=None)

    async def _drain(self, deadline: float, quiet_s: float = 0.6) -> None:
        """Read until every assigned partition is at its high watermark and nothing new came
        for `quiet_s` (longer than one fetch long-poll round). Not `end_offsets()`: the embedded
        Tansu broker answers ListOffsets(latest) with the last batch's base offset + 1."""
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = await self._consumer.getmany(timeout_ms=100, max_records=self.batch_rows)
            if any(batch.values()):
                self._add(batch)
                quiet_since = time.monotonic()
                if len(self._rows) >= self.batch_rows:
                    await self.flush(deadline)
                continue
            behind = [tp for tp in self._consumer.assignment()
                      if await self._consumer.position(tp) < (self._consumer.highwater(tp) or 0)]
            if not behind and time.monotonic() - quiet_since >= quiet_s:
                break
        await self.flush(deadline)

    def health(self) -> SinkHealth:
        assigned = self._consumer.assignment() if self._consumer is not None else set()
        backlog = {(tp.topic, tp.partition): max((self._consumer.highwater(tp) or offset) - offset, 0)
                   for tp, offset in self._unstored.items() if tp in assigned}
        age = time.monotonic() - self._oldest if self._oldest is not None else 0.0
        return SinkHealth(backlog, len(self._rows), age, self._last_flush_at)

    def _add(self, batch: dict[TopicPartition, list[Any]]) -> None:
        for tp, messages in batch.items():
            if messages:   # everything before a partition's first message here was stored before
                self._unstored.setdefault(tp, messages[0].offset)
            for message in messages:
                table = self.topics[tp.topic]
                source = Source(tp.topic, tp.partition, message.offset, message.key, message.value)
                try:
                    self._rows.add(table, rows_from_message(table, message.value, self.default_tenant, self.tenants), source)
                    self._messages[table] += 1
                except BadMessage as exc:
                    self._dead_letter(source, "sink_rows_failed", str(exc))
                self._offsets[tp] = message.offset + 1
                self._newest_ts_ms = max(self._newest_ts_ms, message.timestamp or 0)
                if self._oldest is None:
                    self._oldest = time.monotonic()
        if batch and "sink_first_message_at" not in self.stats:   # rates run from here (reckon bench costs)
            self.stats["sink_first_message_at"] = time.time()

    def _dead_letter(self, source: Source, reason: str, detail: str) -> None:
        log.warning("sink: dead-lettering %s[%d]@%d (%s): %s", source.topic, source.partition, source.offset,
                    reason, detail)
        self._dead.append(DeadLetter(source.key, source.value, source.topic, source.partition, source.offset,
                                     reason, detail))
        self.stats[f"sink_dead:{reason}"] += 1
        if self.topics[source.topic] == "cost_events":
            self.stats["cost_events_dead_lettered"] += 1

    async def _send_dead_letters(self) -> None:
        """Every dead letter of the buffer, acknowledged by the broker (before the commit)."""
        for dead in self._dead:
            key, value, headers = dead.sendable()
            await self._producer.send_and_wait(DEAD_LETTERS, value, key=key, headers=headers)
        self._dead = []

    def _due(self) -> bool:
        if self._oldest is None:
            return False
        return len(self._rows) >= self.batch_rows or time.monotonic() - self._oldest >= self.flush_s

    async def flush(self, deadline: float | None) -> bool:
        """Write the buffer and commit its offsets; False if `deadline` passed first (nothing committed)."""
        async with self._lock:
            if self._oldest is None:
                return True
            if not await self._write(deadline):
                return False
            await self._send_dead_letters()
            await self._commit(self._offsets)
            self._unstored.update(self._offsets)
            self._last_flush_at = time.time()
            lag_ms = time.time() * 1000 - self._newest_ts_ms if self._newest_ts_ms else 0.0
            self.stats["sink_flushes"] += 1
            self.stats["sink_flushed_at"] = time.time()
            self.stats["sink_freshness_ms"] = round(lag_ms, 1)  # a gauge: newest message -> stored
            self._reset()
            return True

    def _reset(self) -> None:
        self._rows = Rows()
        self._offsets = {}
        self._oldest = None
        self._newest_ts_ms = 0
        self._messages = Counter()
        self._inserted = {}
        self._storage_rows = None
        self._written = None
        self._dead = []

    async def _write(self, deadline: float | None) -> bool:
        delay = 0.1
        paused = False
        try:
            while True:
                try:
                    written, stored = await asyncio.to_thread(self._write_flush)
                    break
                except ClickHouseUnavailable as exc:
                    self.stats["sink_retries"] += 1
                    log.warning("sink: %s; retrying in %.1fs", exc, delay)
                except ClickHouseError as exc:
                    self.stats["sink_errors"] += 1
                    log.error("sink stalled (offsets not committed, nothing lost): %s", exc)
                    delay = STALL_BACKOFF_S
                if (deadline is None and self._stopping) or \
                        (deadline is not None and time.monotonic() + delay > deadline):
                    return False   # stopping: the drain retries until its own deadline
                if not paused and self._consumer.assignment():
                    # Paused partitions return nothing, but polling keeps this member in its group.
                    self._consumer.pause(*self._consumer.assignment())
                    paused = True
                await self._consumer.getmany(timeout_ms=int(delay * 1000))
                delay = min(delay * 2, max(self.max_backoff_s, delay))
        finally:
            if paused:
                self._consumer.resume(*self._consumer.assignment())
        for source, detail in written.rejected:
            self._dead_letter(source, "sink_insert_failed", detail)
            self._messages[self.topics[source.topic]] -= 1
        # What this flush stored: its first attempt's fresh rows (an insert whose answer was
        # lost counts: the retry finds its rows stored), less the rows of refused messages.
        refused = {id(source) for source, _ in written.rejected}
        for table, stat in (("cost_events", "cost_rows_written"), ("recommendations_log", "recs_logged"),
                            ("clicks_log", "clicks_logged")):
            dropped = sum(id(s) in refused for s in self._rows.sources.get(table, ())) if refused else 0
            self.stats[stat] += max(len(self._inserted.get(table, ())) - dropped, 0)
        self.stats["storage_rows_written"] += stored
        self.stats["cost_events_sunk"] += self._messages["cost_events"]
        return True

    def _write_flush(self) -> tuple[Written, int]:
        """In a thread: the buffer's rows (idempotent), then its storage cost rows; returns what
        the rows' inserts did and how many storage rows were stored. A retry after a failure
        redoes what did not finish: rows already stored are skipped, the storage rows are
        measured once per flush."""
        if self._storage_rows is None:
            if self.storage is not None:
                self.storage.begin()
            self._written = write(self.ch, self._rows, self._inserted)
            self._storage_rows = [] if self.storage is None else self.storage.rows(
                self._inserted, flush_id(self._offsets))
        lines = Rows()
        lines.add("cost_events", self._storage_rows)
        return self._written, write(self.ch, lines).inserted.get("cost_events", 0)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assigned = self._consumer.assignment()
        mine = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not mine:
            return
        try:
            await self._consumer.commit(mine)
        except KafkaError as exc:   # rebalanced meanwhile: the rows are stored, a re-read is deduplicated
            self.stats["sink_commit_failed"] += 1
            log.warning("sink: commit failed after a successful insert (%s); the re-read will be deduplicated", exc)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        if self._lock.locked():
            # A write is in flight (maybe retrying): never block the rebalance on it. It commits
            # only partitions still assigned; the new owner re-reads the rest, deduplicated.
            return
        if self._oldest is not None and not await self.flush(deadline=time.monotonic() + 2.0):
            log.warning("sink: dropping an unwritten buffer on rebalance; the new owner re-reads it")
            async with self._lock:
                self._reset()


class _Revoke(ConsumerRebalanceListener):
    def __init__(self, sink: SinkConsumer) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.sink.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None
