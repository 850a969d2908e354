"""The batch path's offset book-keeping is Faust's own: what it acknowledges is what Faust
commits. The end-to-end guarantees (restart resumes, kill -9 loses nothing, rebalance) are
in test_worker.py, test_scale_out.py and test_costs_worker.py."""

from __future__ import annotations

import asyncio
from collections import namedtuple

import faust
import pytest
from faust.types import TP

from reckon.streams.kafka.transport import Consumer, _holes

Rec = namedtuple("Rec", "offset")
TP0 = TP("clicks", 0)


@pytest.fixture
def consumer() -> Consumer:
    app = faust.App("test-batch-consumer", broker="reckon://127.0.0.1:9", store="memory://")
    c = app.consumer     # not started: no broker needed for the book-keeping
    assert isinstance(c, Consumer)
    return c


def _ack(consumer: Consumer, offsets: list[int]) -> None:
    asyncio.run(consumer._ack_batch({TP0: [Rec(o) for o in offsets]}))


def test_holes_before_and_inside_a_batch() -> None:
    assert list(_holes(None, [0, 1, 2])) == []
    assert list(_holes(2, [3, 4])) == []
    assert list(_holes(2, [6, 7, 9, 12])) == [(3, 5), (8, 8), (10, 11)]


def test_consecutive_batches_commit_past_their_last_offset(consumer: Consumer) -> None:
    _ack(consumer, list(range(0, 5)))
    assert consumer._new_offset(TP0) == 5
    _ack(consumer, list(range(5, 2005)))
    assert consumer._new_offset(TP0) == 2005
    assert consumer._n_acked == 2005 and consumer._read_offset[TP0] == 2004


def test_compacted_holes_do_not_stall_the_commit(consumer: Consumer) -> None:
    _ack(consumer, [0, 1])
    _ack(consumer, [4, 5, 8])          # 2, 3, 6, 7 compacted away
    assert consumer._new_offset(TP0) == 9


def test_an_unacknowledged_batch_is_not_committed(consumer: Consumer) -> None:
    _ack(consumer, [0, 1, 2])
    assert consumer._new_offset(TP0) == 3
    assert consumer._new_offset(TP0) is None   # nothing new acknowledged: nothing to commit


def test_records_already_read_are_skipped(consumer: Consumer) -> None:
    _ack(consumer, [0, 1, 2, 3])
    fresh = consumer._unread(TP0, [Rec(2), Rec(3), Rec(4), Rec(5)])
    assert [r.offset for r in fresh] == [3, 4, 5]   # Faust's rule: offset >= read offset


def test_rebalance_waits_for_the_batch_in_flight(consumer: Consumer) -> None:
    async def run() -> None:
        await consumer._batch_running.acquire()            # a batch is being handled
        waiting = asyncio.ensure_future(consumer.wait_empty())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        consumer._batch_running.release()
        await asyncio.wait_for(waiting, 2)
    asyncio.run(run())


def _fetching(consumer: Consumer, monkeypatch, records: dict, rebalance: bool = False) -> list:
    """Make the consumer's next fetch return `records` (optionally across a rebalance) and
    route the batch topic to a handler that records what it got."""
    import faust.transport.consumer as base

    handled: list = []

    async def handler(batch) -> None:
        handled.append(batch)

    async def fetch(self, timeout):
        if rebalance:
            self.app.consumer_generation_id += 1
        return records, {TP0}

    monkeypatch.setattr(base.Consumer, "_wait_next_records", fetch)
    monkeypatch.setattr(consumer, "highwater", lambda tp: 100)   # no consumer thread in a unit test
    consumer.app.reckon_batch_route = (frozenset({"clicks"}), handler)
    return handled


def test_a_fetch_is_handled_as_one_batch_and_acknowledged(consumer: Consumer, monkeypatch) -> None:
    handled = _fetching(consumer, monkeypatch, {TP0: [Rec(0), Rec(1)], TP("other", 0): [Rec(7)]})
    rest, _ = asyncio.run(consumer._wait_next_records(1.0))
    assert handled == [{TP0: [Rec(0), Rec(1)]}]
    assert list(rest) == [TP("other", 0)]          # other topics take Faust's per-message path
    assert consumer._new_offset(TP0) == 2


def test_a_fetch_that_straddles_a_rebalance_is_not_handled(consumer: Consumer, monkeypatch) -> None:
    handled = _fetching(consumer, monkeypatch, {TP0: [Rec(0), Rec(1)]}, rebalance=True)
    rest, _ = asyncio.run(consumer._wait_next_records(1.0))
    assert handled == [] and rest == {}
    assert consumer._new_offset(TP0) is None       # nothing acknowledged, nothing committed


def test_a_commit_snapshots_state_between_batches_and_writes_it_before_the_offsets(
        consumer: Consumer, monkeypatch) -> None:
    calls: list = []

    def before():
        calls.append("snapshot staged state")

        async def write() -> None:
            assert not consumer._batch_running.locked()     # batches may run meanwhile
            calls.append("write it")
        return write

    async def commit_offsets(offsets, start_new_transaction) -> bool:
        calls.append(dict(offsets))
        return True

    async def next_batch_runs(offsets) -> None:               # the lock is free again here
        await consumer._ack_batch({TP0: [Rec(4)]})

    monkeypatch.setattr(consumer, "_commit_offsets", commit_offsets)
    monkeypatch.setattr(consumer, "_handle_attached", next_batch_runs)
    consumer.app.reckon_before_commit = before
    _ack(consumer, [0, 1, 2])

    async def run() -> None:
        await consumer._batch_running.acquire()            # a batch is being handled
        committing = asyncio.ensure_future(consumer._commit_tps([TP0], True))
        await asyncio.sleep(0.05)
        assert calls == []                                 # its states are not staged yet
        await consumer._ack_batch({TP0: [Rec(3)]})         # ... it finishes
        consumer._batch_running.release()
        assert await asyncio.wait_for(committing, 2) is True
    asyncio.run(run())
    assert calls == ["snapshot staged state", "write it", {TP0: 4}]   # offset 4's state is not in it
    assert consumer._new_offset(TP0) == 5                  # the next commit takes it


def test_batch_topics_get_the_fetched_records_and_other_topics_consumer_records() -> None:
    # The fetcher module's PartitionRecords is Reckon's (reckon.streams.kafka.transport is imported):
    # a batch topic's records come as parsed, any other topic's as ConsumerRecords.
    from aiokafka.consumer import fetcher
    from aiokafka.record.default_records import DefaultRecordBatchBuilder
    from aiokafka.record.memory_records import MemoryRecords
    from aiokafka.structs import ConsumerRecord, TopicPartition

    from reckon.streams.kafka import transport

    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i in range(3):
        builder.append(i, timestamp=1_700_000_000_000 + i, key=b"u%d" % i, value=b'{"n":%d}' % i, headers=[])
    data = bytes(builder.build())

    def read(topic: str) -> list:
        return list(fetcher.PartitionRecords(TopicPartition(topic, 0), MemoryRecords(data), [], 0,
                                             None, None, True, 0))

    transport._BATCH_TOPICS.add("batch-topic")
    try:
        fast, slow = read("batch-topic"), read("other-topic")
    finally:
        transport._BATCH_TOPICS.discard("batch-topic")
    assert fetcher.PartitionRecords is transport._PartitionRecords
    assert all(isinstance(r, ConsumerRecord) for r in slow)
    assert not any(isinstance(r, ConsumerRecord) for r in fast)
    fields = ("offset", "timestamp", "key", "value")
    assert [tuple(getattr(r, f) for f in fields) for r in fast] == \
           [tuple(getattr(r, f) for f in fields) for r in slow] == \
           [(i, 1_700_000_000_000 + i, b"u%d" % i, b'{"n":%d}' % i) for i in range(3)]
