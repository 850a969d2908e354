"""Candidate generation learned from the stream.

Sources: item co-visitation (decayed), items engaged after a query term, trending items
in a sliding window, and nearest items by the model's embeddings. Per-worker memory,
rebuilt from the stream after a restart; each is bounded.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Sequence
from itertools import islice

from streams.contracts import Event, query_terms

MAX_TRACKED = 50_000       # items / terms kept in co-visitation and query maps
NEIGHBOURS = 30            # per item / term
DECAY = 0.98               # applied to an item's neighbours each time it gains a new one


class _BoundedMap(OrderedDict):
    """LRU map of key -> Counter."""

    def touch(self, key: str) -> Counter:
        counter = self.get(key)
        if counter is None:
            counter = self[key] = Counter()
            if len(self) > MAX_TRACKED:
                self.popitem(last=False)
        else:
            self.move_to_end(key)
        return counter


def _bump(counter: Counter, item: str, weight: float = 1.0) -> None:
    if item not in counter and len(counter) >= NEIGHBOURS * 2:
        for key in list(counter):
            counter[key] *= DECAY
        for key, _ in counter.most_common()[NEIGHBOURS:]:
            del counter[key]
    counter[item] += weight


class CandidateIndex:
    def __init__(self, trending_window_s: float = 600.0) -> None:
        self.covisit = _BoundedMap()
        self.by_term = _BoundedMap()
        self.trending_window_s = trending_window_s
        self._recent: deque[tuple[float, str]] = deque()
        self.trending = Counter()
        self._memo: dict[tuple[str, str], list[str]] = {}
        self._trending_top: list[str] | None = None

    def begin_batch(self) -> None:
        """Neighbour lists and trending are ranked once per batch, not once per user."""
        self._memo.clear()
        self._trending_top = None

    def observe(self, event: Event, state: dict) -> None:
        """Learn from one valid event, given the user's state *before* it was applied."""
        if event.kind != "click":
            return
        for prev in state["items"][-3:]:
            if prev != event.item_id:
                _bump(self.covisit.touch(prev), event.item_id)
                _bump(self.covisit.touch(event.item_id), prev, 0.5)
        for term in state["terms"][-4:]:
            _bump(self.by_term.touch(term), event.item_id)
        self._recent.append((event.ts, event.item_id))
        self.trending[event.item_id] += 1
        horizon = event.ts - self.trending_window_s
        while self._recent and self._recent[0][0] < horizon:
            _, old = self._recent.popleft()
            self.trending[old] -= 1
            if self.trending[old] <= 0:
                del self.trending[old]

    def observe_search(self, event: Event) -> None:
        for term in query_terms(event.query):
            counter = self.by_term.touch(term)
            for item in event.results[:5]:
                _bump(counter, item, 0.25)

    def ranked(self, source: str, key: str) -> list[str]:
        memo = self._memo.get((source, key))
        if memo is None:
            counter = (self.covisit if source == "covisit" else self.by_term).get(key)
            memo = [i for i, _ in counter.most_common(NEIGHBOURS)] if counter else []
            self._memo[(source, key)] = memo
        return memo

    def trending_top(self, n: int) -> list[str]:
        if self._trending_top is None or len(self._trending_top) < n:
            self._trending_top = [i for i, _ in self.trending.most_common(n)]
        return self._trending_top



SOURCES = ("covisit", "query", "embedding", "trending", "catalog")  # catalog: any known item, last resort


def merge(parts: Sequence[tuple[Sequence[int], int]], exclude: Iterable[int], n: int
          ) -> tuple[list[int], list[int]]:
    """Merge candidate item indices in priority order, first occurrence wins.

    parts: (item indices already cut to the source's limit, source code). Returns up to n
    indices and the source code of each. Index 0 (unknown item) and `exclude` (what the
    user just bought) never appear. Dict operations keep the per-item work in C.
    """
    merged: dict[int, int] = {}
    for indices, code in parts:
        merged.update({i: code for i in indices if i not in merged})
        if len(merged) > n + 32:  # enough even after removing exclusions
            break
    merged.pop(0, None)
    for i in exclude:
        merged.pop(i, None)
    return list(islice(merged, n)), list(islice(merged.values(), n))
