"""Candidate generation learned from the stream.

Sources: item co-visitation (decayed), items engaged after a query term, trending items
in a sliding window, and nearest items by the model's embeddings. Per-worker memory,
rebuilt from the stream after a restart; each is bounded.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence

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

    def candidates(self, state: dict, n: int,
                   nearest: Callable[[Sequence[str]], list[str]] | None = None) -> dict[str, str]:
        """Up to n candidate items -> the source that proposed each, merged in priority order."""
        out: dict[str, str] = {}
        exclude = set(state["bought"])
        recent = state["items"][-5:]

        def add(items: Sequence[str], source: str, limit: int) -> None:
            for item in items:
                if len(out) >= n or limit <= 0:
                    return
                if item not in out and item not in exclude:
                    out[item] = source
                    limit -= 1

        for item in reversed(recent):
            counter = self.covisit.get(item)
            if counter:
                add([i for i, _ in counter.most_common(NEIGHBOURS)], "covisit", n // 2)
        for term in state["terms"][-3:]:
            counter = self.by_term.get(term)
            if counter:
                add([i for i, _ in counter.most_common(NEIGHBOURS)], "query", n // 4)
        if nearest and recent:
            add(nearest(recent[-2:]), "embedding", n // 4)
        add([i for i, _ in self.trending.most_common(n)], "trending", n)
        return out
