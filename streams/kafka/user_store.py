"""User states: the Faust Table's RocksDB store and changelog, with a write-back cache.

Faust's `table[key] = value` serialises, writes RocksDB, and queues one changelog message,
all per key and per write: at one write per user per batch that was most of the worker's
time. This store does what Kafka Streams' record cache does instead:

- reads: a user's state stays decoded in memory between batches (bounded, least recently
  written first out; dropped whenever the partition assignment changes);
- writes: a batch only stages its states. Each offset commit takes a `snapshot`: every
  key staged since the last one, encoded as it is now (once per key, however many
  batches changed it). The transport takes it under the lock that keeps batches out,
  with the offsets to commit (streams/kafka/transport.py), so the snapshot holds exactly the
  states those offsets cover. `write` then stores it, one RocksDB WriteBatch and one
  changelog record batch per partition, while the next batches run (it was ~50 ms per
  commit with many distinct users, all of it latency for the events arriving then);
  the offsets are committed after it. Until a snapshot is written its keys are never
  evicted, so a read never falls back to an older RocksDB value.

What Faust keeps is kept: values are plain JSON under raw keys (so Faust's recovery and
`table.get` read them), each changelog record goes to the state's partition, and the
store's persisted changelog offset advances when a partition's records are acknowledged,
as `Table._on_changelog_sent` does. A crash loses only staged states whose events were
never committed: they are consumed again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import faust
import msgspec
from faust.types import TP
from rocksdict import WriteBatch

from reckon.streams.kafka.record_batches import send_to_partition

log = logging.getLogger(__name__)

Snapshot = dict[int, list[tuple[bytes, bytes]]]     # partition -> (key, encoded state), to write

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class UserStore:
    def __init__(self, app: faust.App, table: faust.Table, max_cached: int = 50_000,
                 stats: Counter | None = None) -> None:
        self.app = app
        self.table = table
        self.max_cached = max_cached
        self.stats = stats if stats is not None else Counter()
        self._cached: dict[bytes, dict] = {}               # key -> decoded state
        self._staged: dict[bytes, int] = {}                # key -> partition, to write
        self._writing: dict[bytes, int] = {}               # keys of the snapshot being written
        self._sizes: dict[bytes, int] = {}                 # key -> bytes stored (cached keys)
        self._generation: int | None = None

    @property
    def _store(self) -> Any:
        return self.table.data  # faust.stores.rocksdb.Store, created when the table starts

    def begin_batch(self) -> None:
        """Forget cached states after a rebalance: a partition that left this worker and came
        back may have been changed by another one (staged states were written by the commit
        that every rebalance makes first)."""
        generation = self.app.consumer_generation_id
        if generation != self._generation:
            self._generation = generation
            keep = self._staged.keys() | self._writing.keys()
            self._cached = {key: self._cached[key] for key in keep}
            self._sizes = {key: self._sizes[key] for key in keep if key in self._sizes}

    def get(self, key: bytes, partition: int | None) -> dict | None:
        """The state under `key`: cached, or read from `partition`'s store (the partition its
        events arrive on; anywhere this worker holds it when the partition is unknown)."""
        state = self._cached.get(key)
        if state is not None:
            return state
        store = self._store
        if partition is not None:
            raw = store._db_for_partition(partition).get(key)
        else:
            found = store._get_bucket_for_key(key)
            raw = found.value if found else None
        if raw is None:
            return None
        state = self._cached[key] = _decode(raw)
        self._sizes[key] = len(raw)
        return state

    def held_bytes(self, keys: Iterable[bytes]) -> int:
        """Bytes these states take in the store, as last written or read (0 for a state not
        written yet): what a batch's cost event counts as state held."""
        sizes = self._sizes
        return sum([sizes.get(key, 0) for key in keys])

    def stage(self, states: Mapping[bytes, tuple[int, dict]]) -> None:
        """{key: (partition, state)}: the batch's new states, in the next commit's `snapshot`.
        The state object itself is kept: the next batch reads (and changes) it in place."""
        cached, staged = self._cached, self._staged
        for key, (partition, state) in states.items():
            cached.pop(key, None)          # re-inserted last: the dict's order is write order
            cached[key] = state
            staged[key] = partition
        if len(cached) > self.max_cached:
            self._evict(len(cached) - self.max_cached * 9 // 10)

    def _evict(self, count: int) -> None:
        """Drop the `count` least recently written clean states (staged ones, and those of
        a snapshot still being written, stay)."""
        staged, writing = self._staged, self._writing
        drop = []
        for key in self._cached:
            if len(drop) == count:
                break
            if key not in staged and key not in writing:
                drop.append(key)
        for key in drop:
            del self._cached[key]
            self._sizes.pop(key, None)

    def snapshot(self) -> Snapshot:
        """Every state staged since the last snapshot, encoded as it is now, by partition;
        staging starts over. Take it while no batch runs; `write` it before the next one."""
        staged, self._staged = self._staged, {}
        self._writing = staged
        cached, sizes = self._cached, self._sizes
        by_partition: Snapshot = {}
        for key, partition in staged.items():
            try:
                value = _encode(cached[key])     # staged states are never evicted
            except (TypeError, ValueError) as exc:
                # A state that cannot be stored must not stop every commit: it is dropped from
                # the cache (the next read is the last stored one) and the rest are written.
                log.error("state %r cannot be encoded, not stored: %s", key[:80], exc)
                self.stats["state_encode_failed"] += 1
                del cached[key]
                sizes.pop(key, None)
                continue
            sizes[key] = len(value)
            by_partition.setdefault(partition, []).append((key, value))
        return by_partition

    async def write(self, by_partition: Snapshot) -> int:
        """Store a snapshot in RocksDB and queue it on the changelog; returns the bytes
        written. The changelog batches are on the producer when it returns (Faust flushes
        it before committing offsets)."""
        store = self._store
        topic = self.table.changelog_topic.get_topic_name()
        written = 0
        try:
            for partition, records in by_partition.items():
                records.sort()   # in key order: RocksDB's memtable inserts cost ~35 % less (measured)
                wb = WriteBatch(raw_mode=True)
                for key, value in records:
                    wb.put(key, value)
                    store._key_index[key] = partition
                    written += len(value)
                store._db_for_partition(partition).write(wb)
                producer = self.app.producer._ensure_producer()   # aiokafka's, for whole record batches
                for sent, count in await send_to_partition(producer, topic, partition, records):
                    sent.add_done_callback(self._persisted(TP(topic, partition), count))
        finally:
            self._writing = {}
        return written

    def _persisted(self, tp: TP, count: int) -> Callable[[Any], None]:
        """When a changelog batch of `count` records is acknowledged, the store's persisted
        changelog offset moves to its last record (as Faust's Table does per message)."""
        def persisted(fut: Any) -> None:
            if not fut.cancelled() and fut.exception() is None:
                self._store.set_persisted_offset(tp, fut.result().offset + count - 1)
        return persisted
