"""The user store's write-back cache: reads see the newest state, writes wait for a flush,
the latest staged state of a key is what gets written, and nothing staged is evicted.
(RocksDB is real; the Faust table and the producer are small fakes. The end-to-end
guarantees with the real broker are in test_worker.py and test_costs_worker.py.)"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from rocksdict import Options, Rdict

from reckon.streams.kafka.user_store import UserStore


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
    store = UserStore(app, table, max_cached=100)
    store.begin_batch()
    return store, data, producer


def _stage(store: UserStore, key: bytes, partition: int, state: dict) -> None:
    store.stage({key: (partition, state)})


def test_staged_states_are_read_back_and_written_only_by_a_flush(tmp_path) -> None:
    store, data, producer = _store(tmp_path)
    _stage(store, b"u1", 0, {"n": 1})
    _stage(store, b"u1", 0, {"n": 2})                   # a later batch: the latest wins
    _stage(store, b"u2", 1, {"n": 7})
    assert store.get(b"u1", 0) == {"n": 2}
    assert data.dbs.get(0) is None and producer.sent == []   # nothing written yet

    async def flush() -> int:
        return await store.write(store.snapshot())
    written = asyncio.run(flush())
    assert written == len(b'{"n":2}') + len(b'{"n":7}')
    assert data.dbs[0][b"u1"] == b'{"n":2}' and data.dbs[1][b"u2"] == b'{"n":7}'
    assert sorted((p, recs) for _, p, recs in producer.sent) == [(0, [(b"u1", b'{"n":2}')]),
                                                                 (1, [(b"u2", b'{"n":7}')])]
    assert asyncio.run(flush()) == 0                       # nothing staged since
    assert store.held_bytes([b"u1", b"u2", b"u3"]) == 2 * len(b'{"n":2}')   # u3: never written


def test_a_state_changed_after_staging_is_written_as_it_is_at_the_flush(tmp_path) -> None:
    store, data, _ = _store(tmp_path)
    state = {"items": ["a"]}
    _stage(store, b"u1", 0, state)
    state["items"].append("b")                             # the next batch folds in place
    asyncio.run(store.write(store.snapshot()))
    assert data.dbs[0][b"u1"] == b'{"items":["a","b"]}'
    assert store.held_bytes([b"u1"]) == len(b'{"items":["a","b"]}')


def test_a_full_record_batch_is_sent_and_the_persisted_offset_is_its_last_record(tmp_path) -> None:
    store, data, producer = _store(tmp_path)
    for n in range(5):
        _stage(store, f"u{n}".encode(), 3, {"n": n})
    asyncio.run(store.write(store.snapshot()))
    assert [len(recs) for _, _, recs in producer.sent] == [2, 2, 1]
    assert [k for _, _, recs in producer.sent for k, _ in recs] == [b"u0", b"u1", b"u2", b"u3", b"u4"]
    (tp, offset), = data.persisted.items()
    assert tp.partition == 3 and offset == 30              # base offset of the last batch, 1 record


def test_reads_fall_back_to_rocksdb_and_a_rebalance_forgets_cached_states(tmp_path) -> None:
    store, data, _ = _store(tmp_path)
    data._db_for_partition(0)[b"u1"] = b'{"n": 1}'
    state = store.get(b"u1", 0)
    assert state == {"n": 1} and store.get(b"u1", 0) is state    # decoded once, then cached
    assert store.held_bytes([b"u1"]) == len(b'{"n": 1}')
    data._db_for_partition(0)[b"u1"] = b'{"n": 5}'             # restored from the changelog
    assert store.get(b"u1", 0) == {"n": 1}
    store.app.consumer_generation_id += 1
    store.begin_batch()
    assert store.get(b"u1", 0) == {"n": 5}
    assert store.get(b"nobody", 0) is None


def test_eviction_never_drops_a_staged_state(tmp_path) -> None:
    store, _, _ = _store(tmp_path)
    store.max_cached = 10
    for n in range(10):
        _stage(store, f"u{n}".encode(), 0, {"n": n})
    asyncio.run(store.write(store.snapshot()))                             # u0..u9 clean now
    for n in range(10, 15):
        _stage(store, f"u{n}".encode(), 0, {"n": n})       # 15 cached > 10: evict clean ones
    assert set(store._cached) >= {f"u{n}".encode() for n in range(10, 15)}
    assert len(store._cached) <= 10
    assert store.get(b"u0", 0) == {"n": 0}                 # evicted: read back from RocksDB


def test_a_snapshot_is_what_was_staged_and_its_keys_stay_cached_until_written(tmp_path) -> None:
    store, data, producer = _store(tmp_path)
    store.max_cached = 10
    state = {"n": 0}
    _stage(store, b"u0", 0, state)
    for n in range(1, 10):
        _stage(store, f"u{n}".encode(), 0, {"n": n})
    snapshot = store.snapshot()                            # taken between batches
    state["n"] = 99                                        # a later batch changes u0 in place ...
    _stage(store, b"u0", 0, state)                         # ... and stages it
    for n in range(10, 15):
        _stage(store, f"u{n}".encode(), 0, {"n": n})       # 15 cached > 10, but u0..u9 are unwritten
    assert all(f"u{n}".encode() in store._cached for n in range(10))
    assert data.dbs.get(0) is None and producer.sent == []
    asyncio.run(store.write(snapshot))
    assert data.dbs[0][b"u0"] == b'{"n":0}'               # as it was when the snapshot was taken
    assert store.get(b"u0", 0) == {"n": 99}                # the cache has the newer state,
    asyncio.run(store.write(store.snapshot()))
    assert data.dbs[0][b"u0"] == b'{"n":99}'              # the next write stores it
    _stage(store, b"u15", 0, {"n": 15})                    # now the written ones can make room
    assert len(store._cached) <= 10


def test_a_state_that_cannot_be_encoded_is_dropped_and_the_others_are_written(tmp_path) -> None:
    store, data, _ = _store(tmp_path)
    data._db_for_partition(0)[b"bad"] = b'{"seen":["e1"]}'       # the last state stored
    _stage(store, b"bad", 0, {"seen": ["e1", "e\ud800"]})         # a lone surrogate got past every check
    _stage(store, b"good", 0, {"seen": ["e2"]})
    asyncio.run(store.write(store.snapshot()))                    # the commit goes on
    assert data.dbs[0][b"good"] == b'{"seen":["e2"]}' and data.dbs[0][b"bad"] == b'{"seen":["e1"]}'
    assert store.stats["state_encode_failed"] == 1
    assert store.get(b"bad", 0) == {"seen": ["e1"]}               # read again from the store
