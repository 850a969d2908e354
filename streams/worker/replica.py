"""A read replica of the workers' recommendations: every partition of the `recommendations`
topic, read from its start, folded into each (tenant, user)'s latest value.

Workers publish a user's recommendations keyed by user id, so each partition holds a
user's in the order they were made, and the last one read is the user's latest: what the
owning worker answers from its own cache. A replica answers reads without taking the
workers' CPU or GIL and scales with read traffic; it holds every user, not a worker's
share. A record it cannot take as a recommendation (not JSON, no user or tenant, from
another writer) is counted and skipped: anyone who can write to the topic cannot stop it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from reckon.streams.pipeline.latest import LatestRecommendations
from reckon.streams.pipeline.state import state_key

log = logging.getLogger(__name__)

TOPIC = "recommendations"
FETCH_WAIT_MS = 20          # how long a fetch waits for new records: the replica's staleness floor
PARTITIONS_EVERY_S = 30.0   # how often new partitions of the topic are looked for
# a recommendation of the most items a worker publishes (RECKON_TOP_K <= 1000, ids <= 128
# characters) is ~150 KB: longer values are another writer's, and would take the memory
MAX_VALUE_BYTES = 256 * 1024
# records taken per turn of the event loop: requests wait while a turn parses and folds them
MAX_RECORDS = 500


class _Published(msgspec.Struct):
    user_id: str
    tenant: str


_decode = msgspec.json.Decoder(_Published).decode


class Replica:
    def __init__(self, bootstrap: str, client_kwargs: dict[str, Any], max_users: int, max_bytes: int | None = None,
                 topic: str = TOPIC) -> None:
        self.bootstrap, self.client_kwargs, self.topic = bootstrap, client_kwargs, topic
        self.latest = LatestRecommendations(max_users, max_bytes)
        self.read = 0               # recommendations taken
        self.skipped = 0            # records that are not one
        self.lag = -1               # records behind the partitions' ends when last fetched (-1: not known yet)
        self.caught_up = False      # once read to the ends the first fetches saw (or no topic yet), stays so
        self._targets: dict[TopicPartition, int] | None = None
        self.last_read_at = 0.0     # unix s of the last record taken

    def take(self, records: list[Any]) -> None:
        """Fetched records into the latest recommendations, in order."""
        published, taken = {}, 0
        for record in records:
            try:
                if len(record.value) > MAX_VALUE_BYTES:
                    raise TypeError("too long for a recommendation")
                doc = _decode(record.value)
                key = state_key(doc.tenant, doc.user_id)
            except (msgspec.DecodeError, TypeError, UnicodeEncodeError):   # TypeError: a tombstone, too long
                self.skipped += 1
                continue
            published.pop(key, None)        # a key's last value goes last, as the cache orders users
            published[key] = record.value
            taken += 1
        self.read += taken
        self.latest.update(published)

    async def run(self) -> None:
        """Read the topic until cancelled."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=FETCH_WAIT_MS,
                                    **self.client_kwargs)
        try:
            await consumer.start()
            parts: set[TopicPartition] = set()
            looked = 0.0
            while True:
                if time.monotonic() - looked > PARTITIONS_EVERY_S or not parts:
                    looked = time.monotonic()
                    found = await self._partitions(consumer)
                    if found is not None and found - parts:
                        # assign() starts every partition over: after a partition is added, the
                        # topic is read again from the start (in order, so each user's last wins)
                        consumer.assign(sorted(found, key=lambda tp: tp.partition))
                        await consumer.seek_to_beginning(*found)
                        parts = found
                    if not parts:
                        # no topic yet: no worker has published, nothing to catch up on
                        self.caught_up = self.caught_up or found is not None
                        await asyncio.sleep(1.0)
                        continue
                batch = await consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS)
                records = [r for run in batch.values() for r in run]
                if records:
                    self.take(records)
                    self.last_read_at = time.time()
                await self._note_lag(consumer, parts)
        finally:
            await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> set[TopicPartition] | None:
        """The topic's partitions (none: no such topic yet), or None when the broker did not say."""
        try:
            await consumer.topics()         # a metadata request: partitions_for_topic reads its answer
        except Exception as exc:   # a broker briefly gone: asked again on the next round
            log.warning("reading the %s topic's partitions failed: %s", self.topic, exc)
            return None
        return {TopicPartition(self.topic, p) for p in consumer.partitions_for_topic(self.topic) or ()}

    async def _note_lag(self, consumer: AIOKafkaConsumer, parts: set[TopicPartition]) -> None:
        """Records behind the ends the last fetches saw (every partition's fetch answers with
        its end). Caught up once every partition was read to the end its first fetch saw."""
        ends = {tp: consumer.highwater(tp) for tp in parts}
        if None in ends.values():
            return
        positions = {tp: await consumer.position(tp) for tp in parts}
        self.lag = sum(max(0, ends[tp] - positions[tp]) for tp in parts)
        if self._targets is None:
            self._targets = ends
        self.caught_up = self.caught_up or all(positions[tp] >= end for tp, end in self._targets.items())
