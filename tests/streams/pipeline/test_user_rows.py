"""Rows of user state: loaded once, both stored formats, failures kept to their user,
dirty rows written once per snapshot and never evicted before."""

from __future__ import annotations

import json

import numpy as np

from reckon.streams.pipeline.state import MAX_ITEMS, state_key
from reckon.streams.pipeline.user_rows import UserRows
from reckon.streams.pipeline.user_table import id_hashes


def _fold_one(rows: UserRows, user: tuple[str, str], event_id: str, item: str, ts: float) -> None:
    got, failed = rows.rows_of([user], lambda i: 0)
    assert not failed
    table = rows.table
    table.fold_batch(got, id_hashes([event_id]), np.array([ts]), table.items_names.encode([item]),
                     np.array([False]), {}, 1e9)
    rows.stage(got, np.array([3]))


def test_reads_stored_states_of_either_format_once() -> None:
    old = {"items": ["a", "b"], "terms": [], "seen": ["e1"], "bought": [], "clicks": 2, "searches": 0,
           "last_seen": 5.0, "last_rec_ts": 0.0}      # as a worker before the table stored it (JSON)
    store = {state_key("t", "old"): json.dumps(old).encode()}
    reads = []
    rows = UserRows(lambda key, partition: reads.append(key) or store.get(key))
    assert rows.state(("t", "old"))["items"] == ["a", "b"]
    _fold_one(rows, ("t", "old"), "e1", "c", 6.0)              # e1 was seen: a duplicate
    _fold_one(rows, ("t", "old"), "e2", "c", 6.0)
    assert rows.state(("t", "old"))["items"] == ["a", "b", "c"] and reads == [state_key("t", "old")]
    snapshot = rows.snapshot()
    [(key, value)] = snapshot[3]
    assert key == state_key("t", "old") and value[:1] == b"\x02"
    store[key] = value
    again = UserRows(store.get)
    assert again.state(("t", "old")) == rows.state(("t", "old"))
    assert again.held_bytes(again.rows_of([("t", "old")], lambda i: 3)[0]) == len(value)


def test_a_user_whose_state_cannot_be_read_fails_alone() -> None:
    store = {state_key("t", "bad"): b"\x07garbage"}
    rows = UserRows(lambda key, partition: store.get(key))
    got, failed = rows.rows_of([("t", "ok"), ("t", "bad"), ("t", "\ud800")], lambda i: 0)
    assert got[0] >= 0 and got[1] == -1 and got[2] == -1
    assert set(failed) == {1, 2} and "unknown format" in failed[1] and "UnicodeEncodeError" in failed[2]
    assert ("t", "bad") not in rows.row_of


def test_dirty_rows_stay_until_written_and_snapshots_hold_each_once() -> None:
    rows = UserRows(lambda key, partition: None, max_rows=10)
    for n in range(10):
        _fold_one(rows, ("t", f"u{n}"), f"e{n}", "i", 1.0)
    _fold_one(rows, ("t", "u0"), "e-again", "j", 2.0)
    assert len(rows.row_of) == 10
    snapshot = rows.snapshot()
    assert sum(map(len, snapshot.values())) == 10                # u0 twice in a batch, once in the snapshot
    for n in range(10, 30):                                       # past max_rows: the clean ones go first
        _fold_one(rows, ("t", f"u{n}"), f"e{n}", "i", 1.0)
    assert all(("t", f"u{n}") in rows.row_of for n in range(10))   # still being written
    rows.written()
    assert len(rows.row_of) == 30                                 # u10-u29 are dirty: none can go
    assert sum(map(len, rows.snapshot().values())) == 20
    rows.written()
    _fold_one(rows, ("t", "u30"), "e30", "i", 1.0)
    assert len(rows.row_of) == 9 and ("t", "u30") in rows.row_of     # least recently used went first
    assert {user for _, user in rows.row_of} == {f"u{n}" for n in range(22, 31)}


def test_forget_clean_keeps_what_is_not_written() -> None:
    rows = UserRows(lambda key, partition: None)
    _fold_one(rows, ("t", "a"), "e1", "i", 1.0)
    rows.snapshot()
    rows.written()
    _fold_one(rows, ("t", "b"), "e2", "i", 1.0)
    rows.forget_clean()
    assert set(rows.row_of) == {("t", "b")}


def test_names_no_row_holds_are_forgotten() -> None:
    """Item ids from outside are interned: a stream of ever-new ones stays bounded, and the
    rows still read as they did."""
    rows = UserRows(lambda key, partition: None, names_floor=100)
    most = 0
    for n in range(1000):
        _fold_one(rows, ("t", f"u{n % 2}"), f"e{n}", f"item-{n}", float(n))
        most = max(most, len(rows.table.items_names))
    assert most <= 2 * (2 * MAX_ITEMS + 2)       # about twice what two users hold, never 1,000
    for user in (0, 1):
        assert rows.state(("t", f"u{user}"))["items"] == [f"item-{n}" for n in range(900 + user, 1000, 2)]


def test_a_taken_snapshot_encodes_the_rows_as_they_were_when_taken() -> None:
    """A commit takes its rows while batches wait and encodes them after they resume: what
    batches change in between, names compaction included, is not in it."""
    store: dict[bytes, bytes] = {}
    rows = UserRows(lambda key, partition: store.get(key), names_floor=100)
    for n in range(40):
        _fold_one(rows, ("t", f"u{n % 4}"), f"e{n}", f"item-{n}", float(n))
    expected = {user: rows.state(("t", user)) for user in ("u0", "u1", "u2", "u3")}
    taken = rows.take()
    for n in range(40, 1000):            # later batches, and the names interned before them forgotten
        _fold_one(rows, ("t", f"u{n % 4}"), f"e{n}", f"item-{n}", float(n))
    assert len(rows.table.items_names) < 1000 - 40
    store.update(pair for pairs in taken.encode().values() for pair in pairs)
    rows.written()
    again = UserRows(lambda key, partition: store.get(key))
    assert {user: again.state(("t", user)) for user in expected} == expected
