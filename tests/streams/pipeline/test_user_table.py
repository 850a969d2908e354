"""The columnar user table folds a batch as the dict state does, and stores both formats."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from reckon.streams.pipeline.contracts import Click, Search, query_terms
from reckon.streams.pipeline.state import MAX_BOUGHT, MAX_ITEMS, MAX_SEEN, MAX_TERMS
from reckon.streams.pipeline.user_table import UserTable, id_hashes

TTL = 100.0


def new_state() -> dict:
    return {"items": [], "terms": [], "seen": [], "bought": [], "clicks": 0, "searches": 0,
            "last_seen": 0.0, "last_rec_ts": 0.0}


def _reference(states: dict, batch: list, ttl: float = TTL) -> None:
    """The rules, an event at a time over dict states (the layout before the table): a user
    idle for more than `ttl` at its first event of the batch starts over; an id among its
    last MAX_SEEN or earlier in the batch is a duplicate; lists keep their newest; a
    search's terms go last, their earlier copies removed."""
    by_user: dict = {}
    for event in batch:
        by_user.setdefault(event.user_id, []).append(event)
    for user, mine in by_user.items():
        state = states.get(user)
        if state is None or mine[0].ts - state["last_seen"] > ttl:
            state = new_state()
        seen, changed = set(state["seen"]), False
        for event in mine:
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            changed = True
            state["seen"].append(event.event_id)
            state["last_seen"] = max(state["last_seen"], event.ts)
            if event.kind == "click":
                state["items"].append(event.item_id)
                state["clicks"] += 1
                if event.action == "purchase":
                    state["bought"].append(event.item_id)
            else:
                new = query_terms(event.query)
                state["terms"] = [t for t in state["terms"] if t not in new] + new
                state["searches"] += 1
        for name, limit in (("items", MAX_ITEMS), ("terms", MAX_TERMS), ("seen", MAX_SEEN), ("bought", MAX_BOUGHT)):
            state[name] = state[name][-limit:]
        if changed:
            states[user] = state


def _fold(table: UserTable, rows: dict, batch: list, ttl: float = TTL) -> np.ndarray:
    for event in batch:
        if event.user_id not in rows:
            rows[event.user_id] = int(table.new_rows(1)[0])
    items = np.array([table.items_names.ids[e.item_id] if e.kind == "click" else -1 for e in batch], dtype=np.int32)
    return table.fold_batch(np.array([rows[e.user_id] for e in batch], dtype=np.int64),
                            id_hashes([e.event_id for e in batch]), np.array([e.ts for e in batch]), items,
                            np.array([e.kind == "click" and e.action == "purchase" for e in batch]),
                            {i: query_terms(e.query) for i, e in enumerate(batch) if e.kind == "search"}, ttl)


def _same(table: UserTable, row: int, state: dict) -> None:
    got = table.state(row)
    assert got == {**state, "seen": len(state["seen"])}
    assert table.states(np.array([row, row])) == [got, got]
    assert table.latest_items(np.array([row]), 3) == [state["items"][-3:]]
    assert table.state(row, seen_hashes=True)["seen"] == [f"{h:016x}" for h in id_hashes(state["seen"]).tolist()]


_events = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 150), st.sampled_from(["view", "purchase", "search"]),
                             st.integers(0, 12), st.floats(0, 60)), max_size=90)


@settings(max_examples=150, deadline=None)
@given(st.lists(_events, min_size=1, max_size=5), st.sampled_from([TTL, 1e9]))
def test_a_batch_folds_as_the_dict_state(batches, ttl) -> None:
    """Users, repeated ids (earlier batches and the same one), idle gaps, purchases and
    searches, rings that wrap (no idle gap with the long ttl): every batch leaves each
    user's row equal to the dict state, and its stored form reads back as the same."""
    table, rows, states = UserTable(capacity=2), {}, {}
    clock = 0.0
    for batch in batches:
        events = []
        for user, ident, kind, item, gap in batch:
            clock += gap * 3
            if kind == "search":
                events.append(Search(f"e{ident}", f"u{user}", f"Term{item % 4} t{item}", clock, "t"))
            else:
                events.append(Click(f"e{ident}", f"u{user}", f"i{item}", kind, clock, "t"))
        _reference(states, events, ttl)
        _fold(table, rows, events, ttl)
        for user, state in states.items():
            _same(table, rows[user], state)
    copies = table.new_rows(len(states)).tolist()
    for copy, raw in zip(copies, table.gather(np.array([rows[user] for user in states], dtype=np.int64)).encode()):
        table.decode(copy, raw)
    for copy, state in zip(copies, states.values()):
        _same(table, copy, state)


def test_returns_which_events_were_new() -> None:
    table, rows = UserTable(), {}
    first = [Click("a", "u", "i1", "view", 1.0, "t"), Click("b", "u", "i2", "view", 2.0, "t"),
             Click("a", "u", "i3", "view", 3.0, "t"), Click("a", "v", "i4", "view", 3.0, "t")]
    assert _fold(table, rows, first).tolist() == [True, True, False, True]
    assert _fold(table, rows, [Click("b", "u", "i5", "view", 4.0, "t"), Click("c", "u", "i6", "view", 5.0, "t")]
                 ).tolist() == [False, True]
    assert table.state(rows["u"])["items"] == ["i1", "i2", "i6"]


def test_hashes_are_fixed_whatever_the_batch() -> None:
    """A hash depends only on its id: not on the batch's widest id, nor on the process."""
    alone = id_hashes(["e-1"])[0]
    assert id_hashes(["x" * 128, "e-1", "é☃"])[1] == alone
    assert int(alone) == int(id_hashes(["e-1"])[0]) and alone != id_hashes(["e-2"])[0]
    assert len(set(id_hashes([f"e{i}" for i in range(100_000)]).tolist())) == 100_000


@settings(max_examples=60, deadline=None)
@given(_events)
def test_stored_forms_round_trip(batch) -> None:
    """Version 2 round-trips a row; version 1 (the dict state's JSON) reads as the same row."""
    table, rows, states = UserTable(), {}, {}
    events = [Search(f"e{i}", f"u{u}", f"q{item}", t, "t") if kind == "search"
              else Click(f"e{i}", f"u{u}", f"i{item}", kind, t, "t") for u, i, kind, item, t in batch]
    events.sort(key=lambda e: e.ts)
    _reference(states, events)
    _fold(table, rows, events)
    for user, state in states.items():
        copy = int(table.new_rows(1)[0])
        table.decode(copy, table.gather(np.array([rows[user]])).encode()[0])
        _same(table, copy, state)
        table.decode(copy, json.dumps(state).encode())
        _same(table, copy, state)


def test_lists_keep_their_newest_and_searches_their_latest_terms() -> None:
    table, rows = UserTable(), {}
    clicks = [Click(f"e{n}", "u", f"i{n}", "purchase" if n % 2 else "view", 100.0 + n, "t") for n in range(MAX_SEEN + 3)]
    _fold(table, rows, clicks[:2])
    _fold(table, rows, clicks[2:] + [Search("s1", "u", "Red lamp red", 50.0, "t")])
    state = table.state(rows["u"])
    assert state["items"][-1] == f"i{MAX_SEEN + 2}" and len(state["items"]) == MAX_ITEMS
    assert state["seen"] == MAX_SEEN and state["searches"] == 1 and state["clicks"] == MAX_SEEN + 3
    assert len(state["bought"]) == MAX_BOUGHT and state["bought"][-1] == f"i{MAX_SEEN + 1}"
    assert state["terms"] == ["red", "lamp", "red"] and state["last_seen"] == 100.0 + MAX_SEEN + 2
    _fold(table, rows, [Search("s2", "u", "Blue LAMP", 200.0, "t")])
    assert table.state(rows["u"])["terms"] == ["red", "red", "blue", "lamp"]
