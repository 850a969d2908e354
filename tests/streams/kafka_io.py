"""Test helpers that talk to the real broker."""

from __future__ import annotations

import asyncio
import json
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from reckon.bench.faults import unanswered_users  # noqa: F401  (the tests' coverage check too)
from reckon.streams.traffic.generator import Record


def read_topic(bootstrap: str, topic: str, expect: int, timeout_s: float = 60) -> list:
    """Every message of a topic (all partitions, from the start, no group) until `expect` arrived."""
    async def run() -> list:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            deadline = time.monotonic() + 10
            while not parts and time.monotonic() < deadline:
                await consumer.force_metadata_update()
                parts = consumer.partitions_for_topic(topic) or set()
            consumer.assign([TopicPartition(topic, p) for p in parts])
            await consumer.seek_to_beginning()
            out: list = []
            deadline = time.monotonic() + timeout_s
            while len(out) < expect and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=300)
                out += [m for msgs in batch.values() for m in msgs]
            # linger briefly: more than expected is a bug worth seeing
            batch = await consumer.getmany(timeout_ms=500)
            out += [m for msgs in batch.values() for m in msgs]
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def click(event_id: str, user: str, item: str, ts: float | None = None, action: str = "view",
          tenant: str = "acme") -> Record:
    doc = {"event_id": event_id, "user_id": user, "item_id": item, "action": action,
           "ts": time.time() if ts is None else ts, "tenant": tenant}
    return Record("clicks", user.encode(), json.dumps(doc).encode(), True)


def search(event_id: str, user: str, query: str, results: list[str], tenant: str = "acme") -> Record:
    doc = {"event_id": event_id, "user_id": user, "query": query, "results": results, "ts": time.time(),
           "tenant": tenant}
    return Record("searches", user.encode(), json.dumps(doc).encode(), True)

