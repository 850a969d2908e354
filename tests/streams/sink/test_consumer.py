"""The sink under faults, on the real broker and chdb: nothing lost, nothing duplicated.

- ClickHouse unavailable for a while: the sink retries with backoff and commits nothing
  until the insert succeeds;
- an insert that lands but whose answer is lost: the retry finds the rows and skips them;
- a sink that dies after inserting and before committing: the next one re-reads the same
  messages and writes nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from reckon.streams.core.errors import ClickHouseUnavailable
from reckon.streams.kafka.broker import create_topics
from reckon.streams.sink.consumer import SinkConsumer

from ..kafka_io import read_topic
from .test_rows import workload

pytestmark = pytest.mark.integration


class FlakyClickHouse:
    """A real ClickHouse behind a switch: the first `down` calls fail as unreachable, and the
    first `lost_acks` inserts land but raise as if the connection dropped before the answer."""

    def __init__(self, ch, down: int = 0, lost_acks: int = 0) -> None:
        self.ch, self.down, self.lost_acks = ch, down, lost_acks
        self.calls = Counter()

    def _gate(self, name: str) -> None:
        self.calls[name] += 1
        if self.down > 0:
            self.down -= 1
            raise ClickHouseUnavailable(f"[test] ClickHouse down ({name})")

    def query(self, *args, **kwargs):
        self._gate("query")
        return self.ch.query(*args, **kwargs)

    def insert(self, *args, **kwargs):
        self._gate("insert")
        written = self.ch.insert(*args, **kwargs)
        if self.lost_acks > 0:
            self.lost_acks -= 1
            raise ClickHouseUnavailable("[test] connection reset after the insert")
        return written


def _topic(broker) -> str:
    name = f"cost-events-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap_servers, 4, topics=[name])
    return name


async def _produce(bootstrap: str, topic: str, events: list[dict]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for event in events:
            await producer.send(topic, json.dumps(event).encode(), key=event["event_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()


def _stored(ch, tenant: str) -> tuple[int, int, Decimal]:
    (rows, ids, usd), = ch.query("SELECT count(), uniqExact(event_id), sum(cost_usd) FROM cost_events "
                                 "WHERE tenant = {t:String}", {"t": tenant})
    return rows, ids, usd


def _expected(events: list[dict]) -> tuple[int, int, Decimal]:
    lines = sum(len(e["lines"]) for e in events)
    return lines, lines, sum((Decimal(e["cost"]["total"]) for e in events), Decimal(0))


async def _until(predicate, timeout_s: float = 40.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _sink(ch, broker, topic: str, group: str, stats: Counter) -> SinkConsumer:
    return SinkConsumer(ch, broker.bootstrap_servers, {topic: "cost_events"}, group_id=group, batch_rows=500,
                        flush_ms=100, stats=stats, max_backoff_s=0.3,
                        session_timeout_ms=3_000)


async def _committed(sink: SinkConsumer, topic: str) -> dict[int, int | None]:
    return {p: await sink._consumer.committed(TopicPartition(topic, p)) for p in range(4)}


def test_clickhouse_down_then_back(broker, clickhouse) -> None:
    tenant, topic = f"down-{uuid.uuid4().hex[:8]}", _topic(broker)
    events = [workload(tenant, time.time() - i) for i in range(20)]
    flaky = FlakyClickHouse(clickhouse, down=8)
    stats: Counter = Counter()

    async def run() -> None:
        await _produce(broker.bootstrap_servers, topic, events)
        sink = _sink(flaky, broker, topic, f"g-{tenant}", stats)
        await sink.start()
        try:
            await _until(lambda: stats["sink_retries"] >= 3)
            assert flaky.down > 0                                   # still down:
            assert set((await _committed(sink, topic)).values()) == {None}   # nothing committed
            # stored, and the flush that stored them committed (the count moves before the commit)
            await _until(lambda: stats["cost_events_sunk"] >= len(events) and sink._oldest is None)
            # every partition committed up to its high watermark (what was fetched is what exists)
            committed = await _committed(sink, topic)
            assert committed == {p: sink._consumer.highwater(TopicPartition(topic, p)) for p in range(4)}
            assert sum(committed.values()) == len(events)
        finally:
            await sink.stop()

    asyncio.run(run())
    assert stats["sink_retries"] >= 8 and flaky.down == 0
    assert _stored(clickhouse, tenant) == _expected(events)


def test_lost_insert_answer_is_not_a_duplicate(broker, clickhouse) -> None:
    tenant, topic = f"lost-{uuid.uuid4().hex[:8]}", _topic(broker)
    events = [workload(tenant, time.time() - i) for i in range(10)]
    flaky = FlakyClickHouse(clickhouse, lost_acks=1)
    stats: Counter = Counter()

    async def run() -> None:
        await _produce(broker.bootstrap_servers, topic, events)
        sink = _sink(flaky, broker, topic, f"g-{tenant}", stats)
        await sink.start()
        try:
            await _until(lambda: stats["cost_events_sunk"] >= len(events))
        finally:
            await sink.stop()

    asyncio.run(run())
    assert stats["sink_retries"] >= 1 and flaky.calls["insert"] >= 2
    assert _stored(clickhouse, tenant) == _expected(events)


def test_sink_dying_between_insert_and_commit_rereads_without_duplicates(broker, clickhouse) -> None:
    tenant, topic = f"crash-{uuid.uuid4().hex[:8]}", _topic(broker)
    events = [workload(tenant, time.time() - i) for i in range(12)]
    group = f"g-{tenant}"

    async def first() -> None:
        await _produce(broker.bootstrap_servers, topic, events)
        stats: Counter = Counter()
        sink = _sink(clickhouse, broker, topic, group, stats)

        async def no_commit(offsets) -> None:      # the process "dies" right after the insert
            return None

        sink._commit = no_commit  # type: ignore[method-assign]
        await sink.start()
        try:
            await _until(lambda: stats["cost_events_sunk"] >= len(events))
            assert set((await _committed(sink, topic)).values()) == {None}
        finally:
            await sink.stop()

    async def second() -> Counter:
        stats: Counter = Counter()
        sink = _sink(clickhouse, broker, topic, group, stats)
        await sink.start()
        try:
            await _until(lambda: stats["cost_events_sunk"] >= len(events))   # re-read everything
        finally:
            await sink.stop()
        return stats

    asyncio.run(first())
    assert _stored(clickhouse, tenant) == _expected(events)
    stats = asyncio.run(second())
    assert stats["cost_rows_written"] == 0
    assert _stored(clickhouse, tenant) == _expected(events)


def test_stopping_while_clickhouse_is_down_gives_up_without_committing(broker, clickhouse) -> None:
    tenant, topic = f"stop-{uuid.uuid4().hex[:8]}", _topic(broker)
    events = [workload(tenant, time.time() - i) for i in range(5)]
    flaky = FlakyClickHouse(clickhouse, down=10**6)
    stats: Counter = Counter()

    async def run() -> float:
        await _produce(broker.bootstrap_servers, topic, events)
        sink = _sink(flaky, broker, topic, f"g-{tenant}", stats)
        await sink.start()
        await _until(lambda: stats["sink_retries"] >= 2)
        started = time.monotonic()
        await sink.stop(drain_s=1.5)               # a worker shutting down during an outage
        elapsed = time.monotonic() - started
        probe = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=f"g-{tenant}",
                                 enable_auto_commit=False)
        await probe.start()
        try:                                       # the group's committed offsets, without joining it
            assert {await probe.committed(TopicPartition(topic, p)) for p in range(4)} == {None}
        finally:
            await probe.stop()
        return elapsed

    assert asyncio.run(run()) < 5
    assert _stored(clickhouse, tenant)[0] == 0


async def _produce_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value, key=b"k", partition=0)
        await producer.flush()
    finally:
        await producer.stop()


def _dead_letters(broker, topic: str, expect: int) -> list:
    deadline = time.monotonic() + 30
    while True:
        found = [m for m in read_topic(broker.bootstrap_servers, "events-dlq", 0, timeout_s=1)
                 if dict(m.headers).get("topic") == topic.encode()]
        if len(found) >= expect or time.monotonic() > deadline:
            return found


def test_hostile_messages_are_dead_lettered_alone_and_the_rest_is_stored(broker, clickhouse) -> None:
    tenant, topic = f"hostile-{uuid.uuid4().hex[:8]}", _topic(broker)
    good = [workload(tenant, time.time() - i) for i in range(8)]
    refused = workload(tenant, time.time() - 9)
    refused["lines"][0]["cost"]["total"] = "1e30"           # builds, but no Decimal64(12) holds it
    nan = workload(tenant, time.time() - 10)
    nan["usage"]["cpu_seconds"] = float("nan")
    hostile = {4: b"{not json", 5: json.dumps(refused).encode(), 6: json.dumps(nan).encode(),
               7: json.dumps({**good[0], "event_id": "b-\ud800"}).encode()}
    values = [json.dumps(e).encode() for e in good[:4]] + list(hostile.values()) + \
        [json.dumps(e).encode() for e in good[4:]]
    stats: Counter = Counter()

    async def run() -> dict:
        await _produce_raw(broker.bootstrap_servers, topic, values)
        sink = _sink(clickhouse, broker, topic, f"g-{tenant}", stats)
        await sink.start()
        try:
            await _until(lambda: stats["cost_events_sunk"] + stats["cost_events_dead_lettered"] >= len(values))
            await _until(lambda: sink._oldest is None)              # flushed and committed
            return await _committed(sink, topic)
        finally:
            await sink.stop()
            assert sink.failed is None

    committed = asyncio.run(run())
    assert committed[0] == len(values)                              # nothing left to retry
    assert stats["cost_events_sunk"] == len(good) and stats["cost_events_dead_lettered"] == len(hostile)
    assert _stored(clickhouse, tenant) == _expected(good)
    dead = {m.headers and dict(m.headers)["offset"]: dict(m.headers) for m in _dead_letters(broker, topic, 4)}
    assert {int(offset): (h["stage"], h["partition"]) for offset, h in dead.items()} == {
        4: (b"sink_rows", b"0"), 5: (b"sink_insert", b"0"), 6: (b"sink_rows", b"0"), 7: (b"sink_rows", b"0")}
    assert {int(o) for o in dead} == set(hostile)
    for m in _dead_letters(broker, topic, 4):
        assert m.value == hostile[int(dict(m.headers)["offset"])]     # the raw bytes, kept
