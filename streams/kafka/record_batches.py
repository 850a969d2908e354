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

__all__ = ["partition_for", "send_keyed", "send_to_partition"]

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
    by_partition: dict[int, list[Record]] = {}
    for record in records:
        partition = producer._partition(topic, None, record[0], None, record[0], None)
        by_partition.setdefault(partition, []).append(record)
    for partition, part in by_partition.items():
        await send_to_partition(producer, topic, partition, part)


async def partition_for(producer: Any, topic: str, key: bytes) -> int:
    """The partition aiokafka's `producer` sends `key` to on `topic` (murmur2, as the Java
    client and `reckon replay` partition): where a user's events, and so its state, are."""
    await producer.partitions_for(topic)       # metadata, which the partitioner reads
    return producer._partition(topic, None, key, None, key, None)
