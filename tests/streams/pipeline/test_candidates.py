"""Candidate sources: per-batch learning (co-visitation, query -> item, trending) checked
against exact examples and a plain-Python reference, and the batch merge of candidate lists."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reckon.streams.pipeline.candidates as candidates
from reckon.streams.pipeline.candidates import NEIGHBOURS, CandidateIndex, fill_shared, merge_own


class _Stream:
    """Feeds clicks to an index batch by batch, the way the processor does: per-batch user
    codes, each user's last 3 items before the batch, each user's current query terms."""

    def __init__(self, index: CandidateIndex) -> None:
        self.index = index
        self.items: dict[str, list[str]] = {}
        self.terms: dict[str, list[str]] = {}

    def clicks(self, clicks: list[tuple[str, str, float]]) -> None:
        codes: dict[str, int] = {}
        users = [codes.setdefault(user, len(codes)) for user, _, _ in clicks]
        self.index.observe_clicks(users, [item for _, item, _ in clicks], [ts for _, _, ts in clicks],
                                  [self.items.get(user, [])[-3:] for user in codes],
                                  [self.terms.get(user, [])[-4:] for user in codes])
        for user, item, _ in clicks:
            self.items.setdefault(user, []).append(item)


def _one_user(items: list[str], batch: int) -> CandidateIndex:
    stream = _Stream(CandidateIndex())
    clicks = [("u", item, 1000.0 + n) for n, item in enumerate(items)]
    for start in range(0, len(clicks), batch):
        stream.clicks(clicks[start:start + batch])
    stream.index.begin_batch()
    return stream.index


def _keys(index: CandidateIndex, source: str) -> set[str]:
    vocab, rows = (index._items, index._covisit) if source == "covisit" else (index._terms, index._by_term)
    live = rows.key_of[:rows.used]
    return {vocab.names[k] for k in live[live >= 0].tolist()}


def _row(index: CandidateIndex, source: str, key: str) -> list[tuple[str, float]]:
    """All of a key's neighbours with their stored weights, strongest first (ties: oldest)."""
    vocab, rows = (index._items, index._covisit) if source == "covisit" else (index._terms, index._by_term)
    row = rows.row(vocab.ids.get(key))
    if row < 0:
        return []
    n = rows.size[row]
    order = sorted(range(n), key=lambda s: (-rows.w[row, s], rows.age[row, s]))
    return [(index._items.names[rows.nbr[row, s]], float(rows.w[row, s])) for s in order]


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_index_learns_co_visits_and_stays_bounded(batch: int) -> None:
    index = _one_user(["a", "b"] + [f"x{i}" for i in range(300)], batch)
    assert index.ranked("covisit", "a")[:2] == ["b", "x0"]
    # after: 1.0 each, before (the reverse link): 0.5 each; ties: older first
    assert index.ranked("covisit", "x1") == ["x2", "x3", "x4", "a", "b", "x0"]
    assert [w for _, w in _row(index, "covisit", "x1")] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    assert index.ranked("covisit", "nope") == [] and index.ranked("query", "x1") == []
    assert index.trending_top(2) == ["a", "b"]
    assert index._covisit.size.max() <= NEIGHBOURS * 2


def test_history_carries_across_batches() -> None:
    rng = random.Random(3)
    # 4 users interleaved over 50 items: no key ever has a full list, so batching changes nothing
    clicks = [(f"u{rng.randrange(4)}", f"i{rng.randrange(50)}", 1000.0 + n) for n in range(400)]
    rankings = []
    for batch in (1, 7, len(clicks)):
        stream = _Stream(CandidateIndex())
        stream.terms = {"u0": ["red"], "u1": ["red", "shoe"]}
        for start in range(0, len(clicks), batch):
            stream.clicks(clicks[start:start + batch])
        index = stream.index
        index.begin_batch()
        rankings.append({(source, key): _row(index, source, key)
                         for source in ("covisit", "query") for key in _keys(index, source)})
    assert rankings[0] == rankings[1] == rankings[2]
    assert len(rankings[0]) == 52      # 50 items, 2 terms
    # a user's first click in a batch follows their history: u's "c" co-visits "a" and "b"
    index = CandidateIndex()
    stream = _Stream(index)
    stream.clicks([("u", "a", 1.0), ("u", "b", 2.0)])
    stream.clicks([("v", "z", 3.0), ("u", "c", 4.0)])
    index.begin_batch()
    assert index.ranked("covisit", "c") == ["a", "b"] and index.ranked("covisit", "z") == []


def test_recent_co_visits_rank_first() -> None:
    index = CandidateIndex()
    stream = _Stream(index)
    width = 2 * NEIGHBOURS
    old = ["old"] + [f"x{i}" for i in range(width - 1)]
    for n, item in enumerate(old):              # each once after "a": a's list is full
        stream.items[f"u{n}"] = ["a"]
    stream.clicks([(f"u{n}", item, 10.0) for n, item in enumerate(old)])
    stream.items["v"] = ["a"]
    stream.clicks([("v", "new", 20.0)])          # arrives on a full list: decay, prune
    index.begin_batch()
    ranked = index.ranked("covisit", "a")
    assert ranked[:3] == ["new", "old", "x0"]   # decayed; ties keep the oldest
    assert len(_row(index, "covisit", "a")) == NEIGHBOURS + 1
    assert f"x{NEIGHBOURS - 1}" not in dict(_row(index, "covisit", "a"))   # pruned: the newest of the ties
    # a batch bringing more new neighbours than a prune makes room for: old and new compete
    for n in range(5):
        stream.items[f"s{n}"] = ["a"]
    stream.clicks([(f"s{n}", "strong", 30.0) for n in range(5)])
    crowd = [f"c{n}" for n in range(3 * NEIGHBOURS)]
    for n in range(len(crowd)):
        stream.items[f"c{n}"] = ["a"]
    stream.clicks([(f"c{n}", item, 40.0) for n, item in enumerate(crowd)])
    index.begin_batch()
    row = _row(index, "covisit", "a")
    assert len(row) == 2 * NEIGHBOURS and row[0][0] == "strong"            # 5.0 beats 1.0 decayed away
    assert [item for item, _ in row[1:]] == crowd[:2 * NEIGHBOURS - 1]     # the new ones, ties: older


def _decayed_stream(index: CandidateIndex) -> CandidateIndex:
    stream = _Stream(index)
    stream.items.update(u=["a"], w=["a"])
    stream.clicks([("u", "strong", 1.0), ("w", "strong", 1.0)])    # a -> strong: 2.0
    for n in range(1500):                                           # then one new neighbour a batch
        stream.items[f"u{n}"] = ["a"]
        stream.clicks([(f"u{n}", f"n{n}", 2.0 + n)])
    index.begin_batch()
    return index


def test_old_co_visits_fade(monkeypatch) -> None:
    index = _decayed_stream(CandidateIndex())
    ranked = index.ranked("covisit", "a")
    assert "strong" not in ranked and ranked[0] == "n1499"   # the newest, added after the last decay
    assert len(_row(index, "covisit", "a")) <= 2 * NEIGHBOURS
    monkeypatch.setattr(candidates, "_RESCALE_AT", 2.0)       # fold the scale back in often
    rescaled = _decayed_stream(CandidateIndex())
    assert rescaled._covisit.scale.max() <= 2.0 / candidates.DECAY ** 2
    assert rescaled.ranked("covisit", "a") == ranked


def test_bounded_keys_and_no_leaks_after_eviction(monkeypatch) -> None:
    monkeypatch.setattr(candidates, "MAX_TRACKED", 8)
    index = CandidateIndex(trending_window_s=5.0)
    stream = _Stream(index)
    stream.terms["u0"] = ["t0"]
    for n in range(300):                        # k{n} -> v{n}: 600 distinct items, 300 terms
        stream.items[f"u{n}"] = [f"k{n}"]
        stream.terms[f"u{n}"] = [f"t{n}"]
        stream.items["h"] = ["hot"]             # ... and "hot", an early key, every other batch
        stream.clicks([(f"u{n}", f"v{n}", float(n))] + [("h", f"h{n}", float(n))] * (n % 2 == 0))
        assert len(index._covisit) <= 8 and len(index._by_term) <= 8
    index.begin_batch()
    assert index.ranked("covisit", "hot")[:2] == ["h240", "h242"]   # the least recently touched go
    assert index.ranked("covisit", "k299") == ["v299"] and index.ranked("query", "t299") == ["v299"]
    assert index.ranked("covisit", "k0") == [] and index.ranked("query", "t0") == []   # evicted
    # vocabularies are compacted: what no key, neighbour or trending count refers to goes
    assert len(index._items) <= 2 * (8 + 8 * 2 * NEIGHBOURS * 2 + 10) and len(index._terms) <= 16
    assert sorted(index.trending_top(20)) == sorted([f"v{n}" for n in range(294, 300)] + ["h294", "h296", "h298"])
    # an evicted key comes back with its new neighbours only, whatever row / id it gets
    stream.items["x"] = ["k0"]
    stream.terms["x"] = ["t0"]
    stream.clicks([("x", "fresh", 400.0)])
    index.begin_batch()
    assert _row(index, "covisit", "k0") == [("fresh", 1.0)]
    assert _row(index, "covisit", "fresh") == [("k0", 0.5)]
    assert _row(index, "query", "t0") == [("fresh", 1.0)]
    # one batch with more keys than fit keeps the latest ones
    stream.clicks([("y", f"y{n}", 500.0) for n in range(20)])
    index.begin_batch()
    assert len(index._covisit) == 8 and index.ranked("covisit", "y19") == ["y16", "y17", "y18"]


def test_eviction_takes_the_least_recently_touched(monkeypatch) -> None:
    monkeypatch.setattr(candidates, "MAX_TRACKED", 8)
    index = CandidateIndex()
    stream = _Stream(index)
    for user, pair in zip("uvwx", ("ab", "cd", "ef", "gh")):     # 8 keys, one batch per pair
        stream.clicks([(user, pair[0], 1.0), (user, pair[1], 1.0)])
    stream.items["z"] = ["a"]
    stream.clicks([("z", "b", 2.0)])            # touches a and b again
    stream.clicks([("y", "i", 3.0), ("y", "j", 3.0)])
    assert _keys(index, "covisit") == set("abefghij")
    index.begin_batch()
    assert _row(index, "covisit", "a") == [("b", 2.0)] and index.ranked("covisit", "c") == []


def test_query_source_learns_from_clicks_and_searches() -> None:
    index = CandidateIndex()
    results = [f"r{i}" for i in range(7)]
    index.observe_searches([["red", "shoe"], ["shoe"]], [results, ["r4", "r6"]])
    index.begin_batch()
    assert index.ranked("query", "red") == results[:5]           # 0.25 each, first 5 only
    assert _row(index, "query", "shoe")[:2] == [("r4", 0.5), ("r0", 0.25)]
    assert "r5" not in dict(_row(index, "query", "shoe"))
    stream = _Stream(index)
    stream.terms["u"] = ["a", "b", "c", "red", "shoe"]            # the last 4 count
    stream.clicks([("u", "r3", 1.0), ("v", "r4", 2.0)])
    index.begin_batch()
    assert index.ranked("query", "red") == ["r3", "r0", "r1", "r2", "r4"]   # 1.25 first
    assert index.ranked("query", "b")[:1] == ["r3"] and index.ranked("query", "a") == []
    index.observe_searches([], [])
    index.observe_searches([[]], [["r1"]])                       # a search without terms
    index.observe_clicks([], [], [], [], [])
    index.begin_batch()
    assert index.ranked("query", "red") == ["r3", "r0", "r1", "r2", "r4"]


def test_trending_window_evicts_old_batches() -> None:
    index = CandidateIndex(trending_window_s=100.0)
    stream = _Stream(index)
    stream.clicks([("u", "a", 0.0), ("v", "a", 5.0), ("w", "a", 10.0), ("u", "c", 10.0)])
    stream.clicks([("u", "b", 50.0), ("v", "b", 50.0)])
    index.begin_batch()
    assert index.trending_top(3) == ["a", "b", "c"] and index.trending_top(1) == ["a"]
    stream.clicks([("u", "c", 115.0)])           # the first batch's newest (10) < 115 - 100
    index.begin_batch()
    assert index.trending_top(3) == ["b", "c"]
    stream.clicks([("u", "d", 20.0)])            # late: counted until its batch is the oldest
    index.begin_batch()
    assert index.trending_top(3) == ["b", "c", "d"]


class _Reference:
    """The batch semantics of one neighbour map, in plain Python, one key at a time."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.clock = 0

    def merge(self, triples: list[tuple[str, str, float]]) -> None:
        pairs: dict[tuple[str, str], list] = {}     # (key, neighbour) -> [weight, first arrival]
        for age, (key, value, weight) in enumerate(triples, self.clock):
            if (key, value) in pairs:
                pairs[key, value][0] += weight
            else:
                pairs[key, value] = [weight, age]
        self.clock += len(triples)
        by_key: dict[str, list] = {}
        for (key, value), (weight, age) in pairs.items():
            by_key.setdefault(key, []).append((value, weight, age))
        width, keep = 2 * candidates.NEIGHBOURS, candidates.NEIGHBOURS
        for key, arrivals in by_key.items():
            row = self.rows.setdefault(key, {"nbrs": {}, "scale": 1.0})
            new = []
            for value, weight, age in arrivals:
                if value in row["nbrs"]:
                    row["nbrs"][value][0] += weight * row["scale"]
                else:
                    new.append((value, weight, age))
            size = len(row["nbrs"])
            if size + len(new) > width:                 # decay once per per-event prune
                row["scale"] /= candidates.DECAY ** (1 + (size + len(new) - width - 1) // (width - keep))
                if len(new) <= width - keep:             # keep the strongest, add all new ones
                    row["nbrs"] = dict(sorted(row["nbrs"].items(), key=lambda e: (-e[1][0], e[1][1]))[:keep])
                else:                                   # old and new compete
                    for value, weight, age in new:
                        row["nbrs"][value] = [weight * row["scale"], age]
                    new = []
                    row["nbrs"] = dict(sorted(row["nbrs"].items(), key=lambda e: (-e[1][0], e[1][1]))[:width])
            for value, weight, age in new:
                row["nbrs"][value] = [weight * row["scale"], age]
            if row["scale"] > candidates._RESCALE_AT:
                for entry in row["nbrs"].values():
                    entry[0] /= row["scale"]
                row["scale"] = 1.0

    def row(self, key: str) -> list[tuple[str, float]]:
        row = self.rows.get(key, {"nbrs": {}})["nbrs"]
        return [(v, e[0]) for v, e in sorted(row.items(), key=lambda kv: (-kv[1][0], kv[1][1]))]


_items = st.sampled_from([f"i{n}" for n in range(40)])
_terms = st.lists(st.sampled_from([f"t{n}" for n in range(30)]), max_size=6)
_click_batch = st.tuples(st.just("clicks"), st.lists(st.tuples(st.integers(0, 2), _items), min_size=1, max_size=4),
                         st.dictionaries(st.integers(0, 2), _terms, max_size=3), st.floats(0, 30))
_search_batch = st.tuples(st.just("searches"), st.lists(st.tuples(_terms, st.lists(_items, max_size=7)), max_size=2))


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.one_of(_click_batch, _search_batch), max_size=40),
       neighbours=st.sampled_from([1, 2, 3, 30]), max_tracked=st.sampled_from([10, 1000]),
       rescale_at=st.sampled_from([1.1, 1e200]))
def test_batches_equal_the_reference(batches, neighbours, max_tracked, rescale_at) -> None:
    saved = candidates.NEIGHBOURS, candidates.MAX_TRACKED, candidates._RESCALE_AT
    candidates.NEIGHBOURS, candidates.MAX_TRACKED, candidates._RESCALE_AT = neighbours, max_tracked, rescale_at
    try:
        _check_against_reference(batches)
    finally:
        candidates.NEIGHBOURS, candidates.MAX_TRACKED, candidates._RESCALE_AT = saved


def _check_against_reference(batches) -> None:
    index = CandidateIndex(trending_window_s=40.0)
    refs = {"covisit": _Reference(), "query": _Reference()}
    items: dict[int, list[str]] = {}
    window: list[tuple[float, Counter]] = []
    now = 0.0
    for batch in batches:
        if batch[0] == "searches":
            index.observe_searches([t for t, _ in batch[1]], [r for _, r in batch[1]])
            refs["query"].merge([(t, r, 0.25) for terms, results in batch[1] for t in terms for r in results[:5]])
        else:
            _, clicks, terms, gap = batch
            now += gap
            codes: dict[int, int] = {}
            users = [codes.setdefault(user, len(codes)) for user, _ in clicks]
            index.observe_clicks(users, [item for _, item in clicks], [now] * len(clicks),
                                 [items.get(user, [])[-3:] for user in codes], [terms.get(user, []) for user in codes])
            covisit, query = [], []
            for user, item in clicks:
                for prev in items.get(user, [])[-3:]:
                    if prev != item:
                        covisit += [(prev, item, 1.0), (item, prev, 0.5)]
                query += [(t, item, 1.0) for t in terms.get(user, [])[-4:]]
                items.setdefault(user, []).append(item)
            refs["covisit"].merge(covisit)
            refs["query"].merge(query)
            window.append((now, Counter(item for _, item in clicks)))
            window = [(ts, counts) for ts, counts in window if ts >= now - 40.0]
        index.begin_batch()
        for source, ref in refs.items():
            present = _keys(index, source)
            assert len(present) <= candidates.MAX_TRACKED and present <= ref.rows.keys()
            for key in ref.rows.keys() - present:          # evicted: the reference forgets it too
                del ref.rows[key]
            for key in present:
                assert _row(index, source, key) == ref.row(key)
                assert index.ranked(source, key) == [v for v, _ in ref.row(key)[:candidates.NEIGHBOURS]]
            # many rows of keys at once: each row its first 3 keys' neighbours end to end
            keys = sorted(present)
            rows = [keys[:4], ["never seen", *keys[4:6]], [], keys[6:7]]
            names = index.item_names()
            for row, ids in zip(rows, index.neighbour_ids(source, rows, 3)):
                assert [names[i] for i in ids[ids >= 0]] == [v for key in row[:3] for v in index.ranked(source, key)]
        trending = sum((counts for _, counts in window), Counter())
        top = index.trending_top(5)
        assert [trending[i] for i in top] == sorted(trending.values(), reverse=True)[:5]
        assert len(index._items) <= 2 * max(40, candidates.MAX_TRACKED) + 40
        assert len(index._terms) <= 2 * max(30, candidates.MAX_TRACKED) + 30


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


def _padded(lists: list[list[int]], width: int) -> np.ndarray:
    out = np.full((len(lists), width), -1, dtype=np.int64)
    for row, values in enumerate(lists):
        out[row, :len(values)] = values
    return out


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(st.tuples(_part, _part, _part), st.lists(st.integers(0, 40), max_size=5)),
                     min_size=1, max_size=6),
       shared=st.lists(st.integers(1, 60), max_size=50, unique=True), n=st.integers(1, 70))
def test_batch_merge_equals_the_reference(rows, shared, n) -> None:
    shared_codes = [3 if k % 3 else 4 for k in range(len(shared))]
    # each source's items in a block of columns of its own, -1 where a row has fewer
    widths = [max(len(parts[code]) for parts, _ in rows) for code in range(3)]
    own = np.hstack([_padded([parts[code] for parts, _ in rows], widths[code]) for code in range(3)])
    blocked = _padded([bought for _, bought in rows], max(len(bought) for _, bought in rows))
    matrix, own_picked = merge_own(own, np.repeat(np.arange(3), widths), blocked, n)
    picked = fill_shared(matrix, blocked, shared, shared_codes)
    expected = Counter()
    for row, (parts, bought) in enumerate(rows):
        items, codes = _reference_merge(parts, shared, shared_codes, bought, n)
        assert matrix[row].tolist() == items + [0] * (n - len(items))
        expected.update(codes)
    assert +(Counter(dict(enumerate(own_picked.tolist()))) + Counter(dict(enumerate(picked.tolist())))) == +expected


def test_merge_handles_an_empty_batch_and_no_shared_items() -> None:
    none = np.zeros(0, dtype=np.int64)
    matrix, _ = merge_own(np.array([[3, 1]]), np.array([0, 0]), np.zeros((1, 0), dtype=np.int64), 4)
    assert fill_shared(matrix, np.zeros((1, 0), dtype=np.int64), [], []).tolist() == [0]
    assert matrix.tolist() == [[3, 1, 0, 0]]
    empty, _ = merge_own(np.zeros((0, 0), dtype=np.int64), none, np.zeros((0, 0), dtype=np.int64), 4)
    assert empty.shape == (0, 4) and fill_shared(empty, np.zeros((0, 0), dtype=np.int64), [1, 2], [3, 3]).sum() == 0
    matrix, _ = merge_own(np.zeros((1, 0), dtype=np.int64), none, np.array([[1]]), 2)
    fill_shared(matrix, np.array([[1]]), [1, 2], [3, 4])
    assert matrix.tolist() == [[2, 0]]
