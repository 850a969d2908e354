"""Producing many records at once: whole aiokafka record batches, one partition at a time.

aiokafka's `send()` builds, partitions and enqueues each message in Python (measured
~18-20 µs of CPU per message on the embedded broker, bench/INGEST.md); appending to a
record batch and handing the batch over with `send_batch` costs a few µs per record.
The batches go through the producer's accumulator like any send, so Faust's producer
flush before every offset commit waits for them too: a record sent here is delivered
before the offsets of the events that caused it are committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from aiokafka.partitioner import DefaultPartitioner

__all__ = ["murmur2_many", "partition_for", "send_keyed", "send_to_partition"]

Record = tuple[bytes, bytes]     # key, value


async def send_to_partition(producer: Any, topic: str, partition: int,
                            records: Iterable[Record]) -> list[tuple[asyncio.Future, int]]:
    """`records` to `topic`[`partition`], in order, in as few record batches as they fit
    (the producer's batch size). Returns each batch's delivery future and record count."""
    sent: list[tuple[asyncio.Future, int]] = []
    batch, count = producer.create_batch(), 0
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:   # full: send it
            sent.append((await producer.send_batch(batch, topic, partition=partition), count))
            batch, count = producer.create_batch(), 0
            batch.append(key=key, value=value, timestamp=None)
        count += 1
    if count:
        sent.append((await producer.send_batch(batch, topic, partition=partition), count))
    return sent


async def send_keyed(producer: Any, topic: str, records: Sequence[Record]) -> None:
    """`records` to the partitions `send()` would pick for their keys (the producer's
    partitioner: murmur2, as the Java client), each partition's in order as batches."""
    if not records:
        return
    await producer.partitions_for(topic)       # metadata, which the partitioner reads
    if type(getattr(producer, "_partitioner", None)) is DefaultPartitioner:
        # aiokafka's own choice, for the whole batch at once (its murmur2 is a Python loop
        # per key: ~6 % of a worker's CPU at half load, measured)
        all_partitions = list(producer._metadata.partitions_for_topic(topic))   # as `_partition` orders them
        chosen = np.asarray(all_partitions)[(murmur2_many([key for key, _ in records]) & 0x7FFFFFFF)
                                            % len(all_partitions)].tolist()
    else:
        chosen = [producer._partition(topic, None, key, None, key, None) for key, _ in records]
    by_partition: dict[int, list[Record]] = {}
    for partition, record in zip(chosen, records):
        by_partition.setdefault(partition, []).append(record)
    for partition, part in by_partition.items():
        await send_to_partition(producer, topic, partition, part)


_M = np.uint32(0x5BD1E995)


def murmur2_many(keys: Sequence[bytes]) -> np.ndarray:
    """Kafka's murmur2 (the Java client's `Utils.murmur2`, aiokafka's `murmur2`) of every
    key, as uint32, in array operations over the keys' 4-byte words."""
    n = len(keys)
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=n)
    words_per_key = max(1, -(-int(lengths.max(initial=0)) // 4))
    padded = np.zeros((n, words_per_key * 4), dtype=np.uint8)      # zeros past each key's end
    joined = np.frombuffer(b"".join(keys), dtype=np.uint8)
    starts = np.cumsum(lengths) - lengths
    rows = np.repeat(np.arange(n), lengths)
    padded[rows, np.arange(len(joined)) - starts[rows]] = joined
    words = padded.view("<u4").astype(np.uint32)
    whole = lengths // 4
    h = np.uint32(0x9747B28C) ^ lengths.astype(np.uint32)
    for j in range(words_per_key):
        k = words[:, j] * _M
        k ^= k >> np.uint32(24)
        k *= _M
        h = np.where(whole > j, (h * _M) ^ k, h)
    # the last 1-3 bytes: the zero padding makes their word exactly b0 | b1 << 8 | b2 << 16
    tail = words[np.arange(n), np.minimum(whole, words_per_key - 1)]
    h = np.where(lengths % 4 > 0, (h ^ tail) * _M, h)
    h ^= h >> np.uint32(13)
    h *= _M
    h ^= h >> np.uint32(15)
    return h


async def partition_for(producer: Any, topic: str, key: bytes) -> int:
    """The partition aiokafka's `producer` sends `key` to on `topic` (murmur2, as the Java
    client and `reckon replay` partition): where a user's events, and so its state, are."""
    await producer.partitions_for(topic)       # metadata, which the partitioner reads
    return producer._partition(topic, None, key, None, key, None)
