"""Candidate sources: lazily decayed neighbours, and the batch merge of candidate lists."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import streams.candidates as candidates
from streams.candidates import NEIGHBOURS, CandidateIndex, _BoundedMap, fill_from_shared, first_unique
from streams.contracts import Event


def _eager_bump(counter: Counter, item: str, weight: float) -> None:
    """The reference: decay every neighbour by DECAY when a new one arrives on a full list."""
    if item not in counter and len(counter) >= NEIGHBOURS * 2:
        for key in list(counter):
            counter[key] *= candidates.DECAY
        for key, _ in counter.most_common()[NEIGHBOURS:]:
            del counter[key]
    counter[item] += weight


def _bumps(seed: int, n: int) -> list[tuple[str, float]]:
    rng = random.Random(seed)   # random weights: no exact ties for float rounding to break
    return [(f"i{int(rng.paretovariate(1.0) * 10) % 400}", rng.uniform(0.1, 1.0)) for _ in range(n)]


def test_lazy_decay_ranks_like_eager_decay() -> None:
    for seed in range(5):
        lazy, eager = _BoundedMap(), Counter()
        for item, weight in _bumps(seed, 3000):
            lazy.bump("k", (item,), weight)
            _eager_bump(eager, item, weight)
        assert lazy["k"].top(NEIGHBOURS) == [i for i, _ in eager.most_common(NEIGHBOURS)]
        assert len(lazy["k"]) <= NEIGHBOURS * 2


def test_rescaling_keeps_the_ranking(monkeypatch) -> None:
    monkeypatch.setattr(candidates, "_RESCALE_AT", 1e3)   # fold the scale back in often
    lazy, eager = _BoundedMap(), Counter()
    for item, weight in _bumps(9, 5000):
        lazy.bump("k", (item,), weight)
        _eager_bump(eager, item, weight)
    assert lazy["k"].scale <= 1e3
    assert lazy["k"].top(NEIGHBOURS) == [i for i, _ in eager.most_common(NEIGHBOURS)]


def _click(user: str, item: str, ts: float, n: int) -> Event:
    return Event("click", f"e{n}", user, ts, "t", item_id=item, action="view")


def test_recent_co_visits_rank_first() -> None:
    neighbours = _BoundedMap()
    for item in ["old"] + [f"x{i}" for i in range(NEIGHBOURS * 2 - 1)] + ["new"]:
        neighbours.bump("a", (item,), 1.0)          # each once; "new" arrives on a full list
    ranked = neighbours["a"].top(NEIGHBOURS)
    assert ranked[0] == "new" and ranked[1] == "old"  # decayed; ties keep the oldest


def test_index_learns_co_visits_and_stays_bounded() -> None:
    index = CandidateIndex()
    state = {"items": [], "terms": []}
    for n, item in enumerate(["a", "b"] + [f"x{i}" for i in range(300)]):
        index.observe(_click("u", item, 1000.0 + n, n), state)
        state["items"] = (state["items"] + [item])[-3:]
    index.begin_batch()
    assert index.ranked("covisit", "a")[:2] == ["b", "x0"]
    assert index.ranked("covisit", "x1") == ["x2", "x3", "x4", "a", "b", "x0"]  # after: 1.0, before: 0.5
    assert index.trending_top(2) == ["a", "b"]
    assert all(len(neighbours) <= NEIGHBOURS * 2 for neighbours in index.covisit.values())


def _reference_merge(parts, shared, shared_codes, blocked, n):
    """The merge as first written: every source in priority order, first occurrence wins."""
    merged: dict[int, int] = {}
    for code, part in enumerate(parts):
        merged.update({i: code for i in part if i not in merged})
    merged.update({i: c for i, c in zip(shared, shared_codes) if i not in merged})
    merged.pop(0, None)
    for i in blocked:
        merged.pop(i, None)
    return list(merged)[:n], Counter(list(merged.values())[:n])


_part = st.lists(st.integers(0, 40), max_size=30)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(st.tuples(_part, _part, _part), st.lists(st.integers(0, 40), max_size=5)),
                     min_size=1, max_size=6),
       shared=st.lists(st.integers(1, 60), max_size=50, unique=True), n=st.integers(1, 70))
def test_batch_merge_equals_the_reference(rows, shared, n) -> None:
    shared_codes = [3 if k % 3 else 4 for k in range(len(shared))]
    personal, blocked, own = [], [], Counter()
    for parts, bought in rows:
        items, counts = first_unique(parts, {0, *bought}, n)
        personal.append(items)
        blocked.append(bought)
        own.update({code: c for code, c in enumerate(counts)})
    matrix, picked = fill_from_shared(personal, blocked, shared, shared_codes, n)
    expected = Counter()
    for row, (parts, bought) in enumerate(rows):
        items, codes = _reference_merge(parts, shared, shared_codes, bought, n)
        assert matrix[row].tolist() == items + [0] * (n - len(items))
        expected.update(codes)
    got = own + Counter(dict(enumerate(picked.tolist())))
    assert +got == +expected


def test_fill_handles_an_empty_batch_and_no_shared_items() -> None:
    matrix, _ = fill_from_shared([[3, 1]], [[]], [], [], 4)
    assert matrix.tolist() == [[3, 1, 0, 0]]
    assert fill_from_shared([], [], [1, 2], [3, 3], 4)[0].shape == (0, 4)
    assert np.array_equal(fill_from_shared([[]], [[1]], [1, 2], [3, 4], 2)[0], [[2, 0]])
