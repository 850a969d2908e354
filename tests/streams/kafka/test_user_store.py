"""The user store's write-back cache: reads see the newest state, writes wait for a flush,
a snapshot holds the states as they were when it was taken, and nothing changed is evicted.
(RocksDB is real; the Faust table and the producer are small fakes. The end-to-end
guarantees with the real broker are in test_worker.py and test_costs_worker.py.)"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import numpy as np
from rocksdict import Options, Rdict

from reckon.streams.kafka.user_store import UserStore
from reckon.streams.pipeline.state import state_key
from reckon.streams.pipeline.user_rows import UserRows
from reckon.streams.pipeline.user_table import id_hashes


class _Batch:
    def __init__(self, size: int) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.size = size

    def append(self, *, key: bytes, value: bytes, timestamp: None) -> object | None:
        if len(self.records) == self.size:
            return None                                    # full, as aiokafka's builder says
        self.records.append((key, value))
        return object()


class _Producer:
    def __init__(self, batch_size: int = 2) -> None:
        self.sent: list[tuple[str, int, list]] = []
        self.batch_size = batch_size

    def create_batch(self) -> _Batch:
        return _Batch(self.batch_size)

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> asyncio.Future:
        self.sent.append((topic, partition, batch.records))
        done = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(offset=10 * len(self.sent)))
        return done


def _store(tmp_path, generation: int = 1) -> tuple[UserStore, SimpleNamespace, _Producer]:
    dbs: dict[int, Rdict] = {}
    persisted: dict = {}

    def db_for(partition: int) -> Rdict:
        if partition not in dbs:
            dbs[partition] = Rdict(str(tmp_path / f"p{partition}"), Options(raw_mode=True))
        return dbs[partition]

    data = SimpleNamespace(_db_for_partition=db_for, _key_index={}, dbs=dbs, persisted=persisted,
                           set_persisted_offset=lambda tp, offset: persisted.__setitem__(tp, offset))
    producer = _Producer()
    table = SimpleNamespace(data=data, changelog_topic=SimpleNamespace(get_topic_name=lambda: "state-changelog"))
    app = SimpleNamespace(consumer_generation_id=generation,
                          producer=SimpleNamespace(_ensure_producer=lambda: producer))
    store = UserStore(app, table)
    store.users = UserRows(store.read, max_rows=100)     # the worker's pairing (streams/worker/app.py)
    store.rebalanced()
    return store, data, producer


def _fold(store: UserStore, user: str, partition: int, *events: tuple[str, str]) -> None:
    """(event id, item) clicks of `user` (tenant "t") into the store's rows, staged as a batch is."""
    users = store.users
    rows, failed = users.rows_of([("t", user)] * len(events), lambda i: partition)
    assert not failed
    table = users.table
    table.fold_batch(rows, id_hashes([e for e, _ in events]), np.arange(1.0, len(events) + 1),
                     table.items_names.encode([i for _, i in events]), np.zeros(len(events), dtype=bool), {}, 1e9)
    users.stage(rows[:1], np.array([partition]))


def _items(store: UserStore, user: str, partition: int = 0) -> list[str] | None:
    state = store.users.state(("t", user), partition)
    return None if state is None else state["items"]


def _flush(store: UserStore) -> int:
    return _write(store, store.users.snapshot())


def _write(store: UserStore, snapshot: dict) -> int:
    try:
        return asyncio.run(store.write(snapshot))
    finally:
        store.users.written()


def test_changed_states_are_read_back_and_written_only_by_a_flush(tmp_path) -> None:
    store, data, producer = _store(tmp_path)
    _fold(store, "u1", 0, ("e1", "a"))
    _fold(store, "u1", 0, ("e2", "b"))                    # a later batch: the latest wins
    _fold(store, "u2", 1, ("e3", "c"))
    assert _items(store, "u1") == ["a", "b"]
    assert not any(list(db.keys()) for db in data.dbs.values()) and producer.sent == []   # nothing written yet
    written = _flush(store)
    u1, u2 = data.dbs[0][state_key("t", "u1")], data.dbs[1][state_key("t", "u2")]
    assert written == len(u1) + len(u2) and u1[:1] == b"\x02"       # the table's stored form, version 2
    assert sorted((p, recs) for _, p, recs in producer.sent) == [(0, [(state_key("t", "u1"), u1)]),
                                                                 (1, [(state_key("t", "u2"), u2)])]
    assert _flush(store) == 0                              # nothing changed since
    rows, _ = store.users.rows_of([("t", "u1"), ("t", "u2"), ("t", "u3")], lambda i: 0)
    assert store.users.held_bytes(rows) == len(u1) + len(u2)      # u3: never written
    fresh, _, _ = _store(tmp_path)                          # another worker, the same RocksDB
    fresh.table.data = data
    assert _items(fresh, "u1") == ["a", "b"] and _items(fresh, "u2", 1) == ["c"]


def test_a_snapshot_is_the_states_when_it_was_taken(tmp_path) -> None:
    store, data, _ = _store(tmp_path)
    _fold(store, "u1", 0, ("e1", "a"))
    snapshot = store.users.snapshot()                      # taken between batches
    _fold(store, "u1", 0, ("e2", "b"))                     # the next batch changes the row in place
    _write(store, snapshot)
    store2, _, _ = _store(tmp_path)
    store2.table.data = data
    assert _items(store2, "u1") == ["a"]                   # as it was when the snapshot was taken
    assert _items(store, "u1") == ["a", "b"]               # the cache has the newer state,
    _flush(store)
    store3, _, _ = _store(tmp_path)
    store3.table.data = data
    assert _items(store3, "u1") == ["a", "b"]              # and the next write stores it


def test_a_full_record_batch_is_sent_and_the_persisted_offset_is_its_last_record(tmp_path) -> None:
    store, data, producer = _store(tmp_path)
    for n in range(5):
        _fold(store, f"u{n}", 3, (f"e{n}", "i"))
    _flush(store)
    assert [len(recs) for _, _, recs in producer.sent] == [2, 2, 1]
    assert [k for _, _, recs in producer.sent for k, _ in recs] == [state_key("t", f"u{n}") for n in range(5)]
    (tp, offset), = data.persisted.items()
    assert tp.partition == 3 and offset == 30              # base offset of the last batch, 1 record


def test_reads_fall_back_to_rocksdb_in_either_format_and_a_rebalance_forgets_cached_states(tmp_path) -> None:
    store, data, _ = _store(tmp_path)
    old = {"items": ["x"], "terms": [], "seen": ["e0"], "bought": [], "clicks": 1, "searches": 0,
           "last_seen": 1.0, "last_rec_ts": 0.0}
    data._db_for_partition(0)[state_key("t", "u1")] = json.dumps(old).encode()   # stored before the table
    assert _items(store, "u1") == ["x"]
    _fold(store, "u1", 0, ("e0", "dup"), ("e1", "y"))     # e0 was seen: a duplicate
    _flush(store)
    assert _items(store, "u1") == ["x", "y"]
    data._db_for_partition(0)[state_key("t", "u1")] = json.dumps({**old, "items": ["z"]}).encode()  # restored
    assert _items(store, "u1") == ["x", "y"]               # cached
    store.app.consumer_generation_id += 1
    assert store.rebalanced() and not store.rebalanced()
    store.users.forget_clean()
    assert _items(store, "u1") == ["z"]
    assert store.users.state(("t", "nobody"), 0) is None


def test_eviction_never_drops_a_changed_state(tmp_path) -> None:
    store, _, _ = _store(tmp_path)
    store.users.max_rows = 10
    for n in range(10):
        _fold(store, f"u{n}", 0, (f"e{n}", f"i{n}"))
    _flush(store)                                          # u0..u9 clean now
    for n in range(10, 15):
        _fold(store, f"u{n}", 0, (f"e{n}", f"i{n}"))       # 15 held > 10: evict clean ones
    held = store.users.row_of
    assert {("t", f"u{n}") for n in range(10, 15)} <= set(held) and len(held) <= 10
    assert _items(store, "u0") == ["i0"]                   # evicted: read back from RocksDB


def test_a_name_the_contract_would_refuse_is_still_stored_and_read_back(tmp_path) -> None:
    store, data, _ = _store(tmp_path)
    _fold(store, "bad", 0, ("e1", "i\ud800"))                # a lone surrogate got past every check
    _fold(store, "good", 0, ("e2", "i2"))
    _flush(store)                                          # the commit goes on
    store2, _, _ = _store(tmp_path)
    store2.table.data = data
    assert _items(store2, "bad") == ["i\ud800"] and _items(store2, "good") == ["i2"]
