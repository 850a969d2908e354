"""User states' storage: the Faust Table's RocksDB store and changelog, written in whole
batches.

Faust's `table[key] = value` serialises, writes RocksDB, and queues one changelog message,
all per key and per write: at one write per user per batch that was most of the worker's
time. Reckon does what Kafka Streams' record cache does instead. The cache is the user
table in memory (streams/pipeline/user_rows.py: a state is read from here once, then kept;
bounded, least recently used first out; forgotten when `rebalanced`), and a batch only
marks its rows. Each offset commit takes a snapshot of every row changed since the last
one, encoded as it is now (once per user, however many batches changed it). The transport
takes it under the lock that keeps batches out, with the offsets to commit
(streams/kafka/transport.py), so the snapshot holds exactly the states those offsets cover.
`write` then stores it, one RocksDB WriteBatch and one changelog record batch per
partition, while the next batches run (it was ~50 ms per commit with many distinct users,
all of it latency for the events arriving then); the offsets are committed after it. Until
a snapshot is written its rows are never evicted, so a read never falls back to an older
RocksDB value.

What Faust keeps is kept: values are bytes under raw keys (the user table's stored form),
each changelog record goes to the state's partition, and the store's persisted changelog
offset advances when a partition's records are acknowledged, as `Table._on_changelog_sent`
does. A crash loses only changed states whose events were never committed: they are
consumed again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import faust
from faust.types import TP
from rocksdict import WriteBatch, WriteOptions

from reckon.streams.kafka.record_batches import send_to_partition

log = logging.getLogger(__name__)

Snapshot = dict[int, list[tuple[bytes, bytes]]]     # partition -> (key, stored value), to write


def _without_wal() -> WriteOptions:
    """State writes skip RocksDB's write-ahead log, as Kafka Streams' stores do: the changelog
    is the log. After any stop that is not clean the local store is deleted and rebuilt from
    the changelog (streams/kafka/local_state.py), so the WAL would protect nothing; a clean
    stop closes the store, which flushes what it holds. Measured: ~25 % of a state's RocksDB
    write, and the state's bytes written to disk once, not twice."""
    options = WriteOptions()
    options.disable_wal = True
    return options


class UserStore:
    def __init__(self, app: faust.App, table: faust.Table) -> None:
        self.app = app
        self.table = table
        self._generation: int | None = None
        self._write_options = _without_wal()

    @property
    def _store(self) -> Any:
        return self.table.data  # faust.stores.rocksdb.Store, created when the table starts

    def rebalanced(self) -> bool:
        """Whether the partition assignment changed since the last call: the cache must then
        forget what it holds clean (a partition that left this worker and came back may have
        been changed by another one; changed states were written by the commit that every
        rebalance makes first)."""
        generation = self.app.consumer_generation_id
        changed = generation != self._generation
        self._generation = generation
        return changed

    def read(self, key: bytes, partition: int | None) -> bytes | None:
        """The stored value under `key`, from `partition`'s store (the partition its events
        arrive on; anywhere this worker holds it when the partition is unknown)."""
        store = self._store
        if partition is not None:
            return store._db_for_partition(partition).get(key)
        found = store._get_bucket_for_key(key)
        return found.value if found else None

    async def write(self, by_partition: Snapshot) -> int:
        """Store a snapshot in RocksDB and queue it on the changelog; returns the bytes
        written. The changelog batches are on the producer when it returns (Faust flushes
        it before committing offsets)."""
        store = self._store
        topic = self.table.changelog_topic.get_topic_name()
        written = 0
        for partition, records in by_partition.items():
            records.sort()   # in key order: RocksDB's memtable inserts cost ~35 % less (measured)
            wb = WriteBatch(raw_mode=True)
            for key, value in records:
                wb.put(key, value)
                store._key_index[key] = partition
                written += len(value)
            store._db_for_partition(partition).write(wb, self._write_options)
            producer = self.app.producer._ensure_producer()   # aiokafka's, for whole record batches
            for sent, count in await send_to_partition(producer, topic, partition, records):
                sent.add_done_callback(self._persisted(TP(topic, partition), count))
        return written

    def _persisted(self, tp: TP, count: int) -> Callable[[Any], None]:
        """When a changelog batch of `count` records is acknowledged, the store's persisted
        changelog offset moves to its last record (as Faust's Table does per message)."""
        def persisted(fut: Any) -> None:
            if not fut.cancelled() and fut.exception() is None:
                self._store.set_persisted_offset(tp, fut.result().offset + count - 1)
        return persisted
