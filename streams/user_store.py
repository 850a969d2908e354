"""Batch reads and writes of the user-state Table, below Faust's per-key API.

Faust's `table[key] = value` serialises, writes RocksDB, and queues one changelog message
through `send_soon`, all per key and all needing a "current event" for the partition: about
40 µs a key. A batch touches each user once, so this writes the batch's states with one
RocksDB WriteBatch per partition and sends the changelog messages straight to the
producer. What Faust keeps is kept: values are plain JSON under raw keys (so Faust's
recovery and `table.get` read them), each changelog message goes to the state's partition,
and the store's persisted changelog offset advances when the last message of a partition
is acknowledged, exactly as `Table._on_changelog_sent` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
import msgspec
from faust.types import TP
from rocksdict import WriteBatch

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class UserStore:
    def __init__(self, app: faust.App, table: faust.Table) -> None:
        self.app = app
        self.table = table

    @property
    def _store(self) -> Any:
        return self.table.data  # faust.stores.rocksdb.Store, created when the table starts

    def get(self, key: bytes, partition: int | None) -> dict | None:
        """The state under `key`, read from `partition`'s store (the partition its events
        arrive on); anywhere else this worker holds it when the partition is unknown."""
        store = self._store
        if partition is not None:
            raw = store._db_for_partition(partition).get(key)
        else:
            found = store._get_bucket_for_key(key)
            raw = found.value if found else None
        return None if raw is None else _decode(raw)

    async def put_many(self, states: Mapping[bytes, tuple[int, dict]]) -> int:
        """Write {key: (partition, state)}; returns the bytes written. The changelog
        messages are queued on the producer (Faust flushes it before committing offsets)."""
        store = self._store
        topic = self.table.changelog_topic.get_topic_name()
        batches: dict[int, WriteBatch] = {}
        last: dict[int, Any] = {}
        written = 0
        send = self.app.producer.send
        for key, (partition, state) in states.items():
            value = _encode(state)
            written += len(value)
            wb = batches.get(partition)
            if wb is None:
                wb = batches[partition] = WriteBatch(raw_mode=True)
            wb.put(key, value)
            store._key_index[key] = partition
            last[partition] = await send(topic, key, value, partition, None, None)
        for partition, wb in batches.items():
            store._db_for_partition(partition).write(wb)
        for partition, fut in last.items():
            fut.add_done_callback(self._persisted(TP(topic, partition)))
        return written

    def _persisted(self, tp: TP) -> Any:
        def done(fut: Any) -> None:
            if not fut.cancelled() and fut.exception() is None:
                self._store.set_persisted_offset(tp, fut.result().offset)
        return done
