"""Candidate generation learned from the stream.

Sources: item co-visitation (decayed), items engaged after a query term, trending items
in a sliding window, and nearest items by the model's embeddings. Per-worker memory,
rebuilt from the stream after a restart; each is bounded.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Collection, Sequence
from itertools import chain, islice
from operator import itemgetter

import numpy as np

from streams.contracts import Event, query_terms

MAX_TRACKED = 50_000       # items / terms kept in co-visitation and query maps
NEIGHBOURS = 30            # per item / term
DECAY = 0.98               # applied to an item's neighbours each time it gains a new one
_RESCALE_AT = 1e200        # Neighbours.scale is folded back into the weights past this

_weight = itemgetter(1)


class Neighbours(dict):
    """neighbour -> weight, decayed lazily.

    Decaying every weight by DECAY is the same, for ranking, as weighing every later
    addition by 1/DECAY more: `scale` grows instead of the weights shrinking, so a decay
    costs one multiplication instead of one per neighbour. True weight = stored / scale.
    """

    __slots__ = ("scale",)

    def __init__(self) -> None:
        super().__init__()
        self.scale = 1.0

    def decay_and_prune(self) -> None:
        """Full: decay everything once, keep the strongest NEIGHBOURS (ties: oldest first)."""
        self.scale /= DECAY
        for key, _ in sorted(self.items(), key=_weight, reverse=True)[NEIGHBOURS:]:
            del self[key]
        if self.scale > _RESCALE_AT:
            for key, stored in self.items():
                self[key] = stored / self.scale
            self.scale = 1.0

    def top(self, n: int) -> list[str]:
        """The n strongest, ties oldest first (heapq.nlargest's order; a sort of <= 60 is cheaper)."""
        return [k for k, _ in sorted(self.items(), key=_weight, reverse=True)[:n]]


class _BoundedMap(OrderedDict):
    """LRU map of key -> Neighbours; at most MAX_TRACKED keys."""

    def bump(self, key: str, items: Sequence[str], weight: float) -> None:
        """Add `weight` to each of `items` among `key`'s neighbours (and mark `key` used).

        This runs a few times per click, so the lookup, LRU touch and decayed add are
        written out here rather than split into smaller methods."""
        neighbours = self.get(key)
        if neighbours is None:
            neighbours = self[key] = Neighbours()
            if len(self) > MAX_TRACKED:
                self.popitem(last=False)
        else:
            self.move_to_end(key)
        for item in items:
            stored = neighbours.get(item)
            if stored is None:
                if len(neighbours) >= NEIGHBOURS * 2:
                    neighbours.decay_and_prune()
                neighbours[item] = weight * neighbours.scale
            else:
                neighbours[item] = stored + weight * neighbours.scale


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
        item = event.item_id
        prevs = [prev for prev in state["items"][-3:] if prev != item]
        if prevs:
            bump = self.covisit.bump
            one = (item,)
            for prev in prevs:
                bump(prev, one, 1.0)
            bump(item, prevs, 0.5)      # the reverse link counts half
        for term in state["terms"][-4:]:
            self.by_term.bump(term, (item,), 1.0)
        self._count_trending(event.ts, item)

    def _count_trending(self, ts: float, item: str) -> None:
        recent, trending = self._recent, self.trending
        recent.append((ts, item))
        trending[item] += 1
        horizon = ts - self.trending_window_s
        while recent and recent[0][0] < horizon:
            _, old = recent.popleft()
            left = trending[old] - 1
            if left <= 0:
                del trending[old]
            else:
                trending[old] = left

    def observe_search(self, event: Event) -> None:
        for term in query_terms(event.query):
            self.by_term.bump(term, event.results[:5], 0.25)

    def ranked(self, source: str, key: str) -> list[str]:
        memo = self._memo.get((source, key))
        if memo is None:
            found = (self.covisit if source == "covisit" else self.by_term).get(key)
            memo = found.top(NEIGHBOURS) if found else []
            self._memo[(source, key)] = memo
        return memo

    def trending_top(self, n: int) -> list[str]:
        if self._trending_top is None or len(self._trending_top) < n:
            self._trending_top = [i for i, _ in self.trending.most_common(n)]
        return self._trending_top


SOURCES = ("covisit", "query", "embedding", "trending", "catalog")  # catalog: any known item, last resort


def first_unique(parts: Sequence[Sequence[int]], blocked: Collection[int], n: int
                 ) -> tuple[list[int], list[int]]:
    """A user's own candidates: parts (item indices, in source-priority order) merged,
    first occurrence wins, `blocked` dropped, at most n kept.

    Returns the items and how many of them came from each part. dict.fromkeys/update keep
    the per-item work in C; a repeated item keeps its first position, so the sizes after
    each part say which part each item came from.
    """
    merged: dict[int, None] = {}
    ends = []
    for part in parts:
        merged.update(dict.fromkeys(part))
        ends.append(len(merged))
    if not merged.keys().isdisjoint(blocked):
        # a few at most (unknown items, purchases): each leaves the part it first came from
        for item in merged.keys() & blocked:
            first = next(code for code, part in enumerate(parts) if item in part)
            ends = [end - (code >= first) for code, end in enumerate(ends)]
            del merged[item]
    if len(merged) <= n:
        return list(merged), [b - a for a, b in zip([0] + ends, ends)]
    counts = [min(end, n) for end in ends]
    return list(islice(merged, n)), [b - a for a, b in zip([0] + counts, counts)]


def fill_from_shared(personal: list[list[int]], blocked: list[list[int]], shared: Sequence[int],
                     shared_codes: Sequence[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole batch's candidate matrix: each row's own items first, then the first
    `shared` items (trending, catalog: the same list for every row) that the row neither
    has nor blocks, up to n. Vectorised over the batch.

    personal: per row, already unique and unblocked; blocked: per row, never to appear;
    shared: unique, no 0. Returns (B, n) int64 (0 = padding) and the number of picks per
    shared code (bincount over `shared_codes`).
    """
    rows = len(personal)
    out = np.zeros((rows, n), dtype=np.int64)
    lens = np.array([len(p) for p in personal], dtype=np.int64)
    flat = np.array(list(chain.from_iterable(personal)), dtype=np.int64)
    row_of = np.repeat(np.arange(rows), lens)
    out[row_of, np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)] = flat
    picked = np.zeros(max(shared_codes, default=0) + 1, dtype=np.int64)
    if not len(shared) or not rows:
        return out, picked
    shared = np.asarray(shared, dtype=np.int64)
    # taken[r, j]: shared[j] is already in row r or blocked for it
    b_lens = np.array([len(b) for b in blocked], dtype=np.int64)
    b_flat = np.array(list(chain.from_iterable(blocked)), dtype=np.int64)
    items = np.concatenate([flat, b_flat])
    item_rows = np.concatenate([row_of, np.repeat(np.arange(rows), b_lens)])
    position = np.full(max(int(items.max(initial=0)), int(shared.max())) + 1, -1, dtype=np.int64)
    position[shared] = np.arange(len(shared))
    j = position[items]
    taken = np.zeros((rows, len(shared)), dtype=bool)
    taken[item_rows[j >= 0], j[j >= 0]] = True
    free = ~taken
    slot = np.cumsum(free, axis=1)                      # 1-based slot among the row's free items
    use = free & (slot <= (n - lens)[:, None])
    r, c = np.nonzero(use)
    out[r, lens[r] + slot[r, c] - 1] = shared[c]
    picked += np.bincount(np.asarray(shared_codes, dtype=np.int64)[c], minlength=len(picked))
    return out, picked
