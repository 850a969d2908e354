"""Whole-batch production on the real broker: records land where `send()` would put
them, in order, and small producer batches split a partition's records without loss."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from hypothesis import given
from hypothesis import strategies as st

from reckon.streams.kafka.record_batches import murmur2_many, send_keyed

from ..kafka_io import read_topic


def test_send_keyed_matches_send_partitioning_and_order(fresh_broker) -> None:
    bootstrap = fresh_broker.bootstrap_servers
    keyed = [(f"user-{i % 37}".encode(), f"batched-{i}".encode()) for i in range(500)]

    async def produce() -> dict[bytes, int]:
        # max_batch_size small: each partition's records need several record batches
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=2048, linger_ms=0)
        await producer.start()
        try:
            await send_keyed(producer, "recommendations", keyed)
            await producer.flush()
            # where plain send() puts each key, for comparison
            sent = {key: await producer.send_and_wait("cost-alerts", b"x", key=key) for key in {k for k, _ in keyed}}
            return {key: meta.partition for key, meta in sent.items()}
        finally:
            await producer.stop()

    partition_of = asyncio.run(produce())
    assert len(set(partition_of.values())) > 1            # the keys do spread over partitions
    got = read_topic(bootstrap, "recommendations", len(keyed))
    assert sorted(m.value for m in got) == sorted(v for _, v in keyed)   # each record once
    for m in got:
        assert m.partition == partition_of[m.key]
    by_key: dict[bytes, list[bytes]] = {}
    for m in sorted(got, key=lambda m: (m.partition, m.offset)):
        by_key.setdefault(m.key, []).append(m.value)
    for key, values in by_key.items():
        assert values == [v for k, v in keyed if k == key]   # a key's records keep their order


@given(st.lists(st.binary(max_size=70), max_size=40))
def test_murmur2_of_many_keys_is_kafkas(keys: list[bytes]) -> None:
    assert murmur2_many(keys).tolist() == [murmur2(key) for key in keys]


def test_a_partitioner_of_the_producers_own_is_followed(fresh_broker) -> None:
    bootstrap = fresh_broker.bootstrap_servers

    def last(key: bytes, all_partitions: list[int], available: list[int]) -> int:
        return max(all_partitions)

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, partitioner=last)
        await producer.start()
        try:
            await send_keyed(producer, "recommendations", [(f"u{i}".encode(), b"v") for i in range(50)])
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(produce())
    assert {m.partition for m in read_topic(bootstrap, "recommendations", 50)} == {3}
