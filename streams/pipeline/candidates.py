"""Candidate generation learned from the stream.

Sources: item co-visitation (decayed), items engaged after a query term, trending items
in a sliding window, and nearest items by the model's embeddings. Per-worker memory,
rebuilt from the stream after a restart; each is bounded.

Learning is per batch and vectorised: item ids and query terms are mapped to dense ints
(`Vocab`), a batch's clicks and searches become (key, neighbour, weight) triples built
with numpy, and those are aggregated and merged into fixed-width neighbour rows
(`_NeighbourRows`). Per-event Python work was most of the streaming worker's CPU.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from itertools import chain, repeat

import numpy as np

from reckon.streams.pipeline.arrays import Vocab, grown, run_starts

MAX_TRACKED = 50_000       # items / terms kept in co-visitation and query maps
NEIGHBOURS = 30            # per item / term ranked; a row holds up to twice as many
DECAY = 0.98               # applied to a key's neighbours each time its full row is pruned
_RESCALE_AT = 1e200        # a row's scale is folded back into its weights past this

_PREVS = 3                 # a click co-visits the user's previous 3 items
_TERMS = 4                 # ... and is engaged after the user's last 4 query terms
_RESULTS = 5               # a search links its terms to its first 5 results


class _NeighbourRows:
    """key id -> up to 2 * NEIGHBOURS (neighbour id, weight, age), one fixed-width row per key.

    A row's occupied slots are always its first `size` slots; empty ones hold -1, 0.0, 0.
    Decay is lazy: decaying every weight of a row by DECAY is the same, for ranking, as
    weighing every later addition by 1/DECAY more, so `scale` grows instead of the weights
    shrinking; true weight = w / scale. `age` orders arrivals (ties rank the older first).
    At most MAX_TRACKED keys: the least recently touched are evicted (in chunks) and their
    rows reused, cleared, so a reused row never shows an old key's neighbours.
    """

    def __init__(self) -> None:
        self.width, self.keep = 2 * NEIGHBOURS, NEIGHBOURS
        rows = 16           # grows by doubling: an index per tenant starts small (~40 KB)
        self.nbr = np.full((rows, self.width), -1, dtype=np.int32)
        self.w = np.zeros((rows, self.width))
        self.age = np.zeros((rows, self.width), dtype=np.int64)
        self.size = np.zeros(rows, dtype=np.int64)
        self.scale = np.ones(rows)
        self.touched = np.zeros(rows, dtype=np.int64)               # batch counter
        self.key_of = np.full(rows, -1, dtype=np.int64)             # row -> key id, -1: free
        self.row_of = np.full(0, -1, dtype=np.int64)                # key id -> row, -1: none
        self.used = 0                                               # rows ever handed out
        self.free: list[int] = []                                   # evicted rows, cleared

    def __len__(self) -> int:
        return self.used - len(self.free)

    def row(self, key: int | None) -> int:
        if key is None or key >= len(self.row_of):
            return -1
        return int(self.row_of[key])

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """`row` for many key ids (-1: no id) at once."""
        inside = (keys >= 0) & (keys < len(self.row_of))
        return np.where(inside, self.row_of[np.where(inside, keys, 0)] if len(self.row_of) else -1, -1)

    def _strongest(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Slots of each row's NEIGHBOURS strongest neighbours, ties oldest first, ranked for
        all rows in one sort: (K, NEIGHBOURS) slots, each row's first `counts[k]` real, and counts."""
        counts = np.minimum(self.size[rows], self.keep)
        empty = np.arange(self.width) >= self.size[rows][:, None]
        weight = np.where(empty, np.inf, -self.w[rows])        # empty slots sort last
        return np.lexsort((self.age[rows], weight), axis=-1)[:, :self.keep], counts

    def top(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's strongest neighbour ids (see `_strongest`) and counts."""
        order, counts = self._strongest(rows)
        return np.take_along_axis(self.nbr[rows], order, axis=1), counts

    def top_weighted(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`top` with each neighbour's decayed weight (the stored weight over the row's scale)."""
        order, counts = self._strongest(rows)
        weights = np.take_along_axis(self.w[rows], order, axis=1) / self.scale[rows][:, None]
        return np.take_along_axis(self.nbr[rows], order, axis=1), weights, counts

    def merge(self, keys: np.ndarray, values: np.ndarray, weights: np.ndarray | float,
              age_base: int, tick: int) -> None:
        """Add one batch's raw triples (key id, neighbour id, weight) to the rows. They come
        in arrival order: position i arrived at age `age_base + i`.

        Per key: weights of known neighbours are added; new neighbours are appended. A row
        they would overflow decays as often as the per-event rule (prune a full row to its
        NEIGHBOURS strongest, then add) would have pruned it; then, if at most NEIGHBOURS
        new ones arrive, it keeps its NEIGHBOURS strongest and takes all the new ones (what
        that rule does), and if more arrive, the strongest 2 * NEIGHBOURS of the old and new
        ones together stay.
        """
        count = len(keys)
        if not count:
            return
        # Aggregate duplicate (key, neighbour) pairs, each at its first arrival. Sorting
        # code * count + position is a stable sort by code (much faster than argsort's),
        # and leaves the pairs grouped by key.
        span = int(values.max()) + 1
        code = keys * span + values
        if int(code.max()) < np.iinfo(np.int64).max // count:
            packed = np.sort(code * count + np.arange(count))
            code = packed // count
            arrival = packed - code * count
        else:
            arrival = np.argsort(code, kind="stable")
            code = code[arrival]
        first = run_starts(code)
        if np.ndim(weights):
            weight = np.add.reduceat(weights[arrival], first)
        else:
            weight = np.diff(first, append=count) * weights
        code, arrival = code[first], arrival[first]
        key = code // span
        value = code - key * span
        starts = run_starts(key)
        if len(starts) > MAX_TRACKED:                # more keys than fit: keep the latest
            latest = np.maximum.reduceat(arrival, starts)
            kept = np.zeros(len(starts), dtype=bool)
            kept[np.argsort(-latest, kind="stable")[:MAX_TRACKED]] = True
            kept = np.repeat(kept, np.diff(starts, append=len(key)))
            key, value, weight, arrival = key[kept], value[kept], weight[kept], arrival[kept]
            starts = run_starts(key)
        per_key = np.diff(starts, append=len(key))
        rows = self._rows_for(key[starts], tick)
        row = np.repeat(rows, per_key)

        # known neighbours: compare each pair's value with its whole row (P x width is
        # cheaper than keeping a lookup structure up to date); a value is once in a row
        found = np.flatnonzero(np.take(self.nbr, row, axis=0) == value.astype(np.int32)[:, None])
        hit = found // self.width
        known = row[hit]
        self.w.reshape(-1)[known * self.width + found - hit * self.width] += weight[hit] * self.scale[known]

        new = np.ones(len(row), dtype=bool)
        new[hit] = False
        new = np.flatnonzero(new)
        group = np.repeat(np.arange(len(rows)), per_key)[new]        # ascending
        row, value, weight, arrival = row[new], value[new], weight[new], arrival[new]
        arrived = np.bincount(group, minlength=len(rows))
        size = self.size[rows]
        over = np.flatnonzero(size + arrived > self.width)
        if len(over):
            width, keep = self.width, self.keep
            # The per-event rule prunes a full row to its `keep` strongest when a new
            # neighbour arrives on it, decaying it once: at the first overflow, then once
            # per (width - keep) more. (The cap only keeps `scale` finite: DECAY ** 1000
            # already makes anything older negligible.)
            prunes = np.minimum(1 + (size[over] + arrived[over] - width - 1) // (width - keep), 1000)
            self.scale[rows[over]] /= DECAY ** prunes
            # one prune (the usual case): the strongest `keep` stay, all the new ones follow
            once = over[arrived[over] <= width - keep]
            self._prune(rows[once])
            # more: the old and the new ones compete, the strongest `width` stay
            many = over[arrived[over] > width - keep]
            if len(many):
                compete = np.zeros(len(rows), dtype=bool)
                compete[many] = True
                mine = compete[group]
                self._refill(rows[many], np.searchsorted(many, group[mine]), value[mine],
                             weight[mine], age_base + arrival[mine])
                arrived[many] = 0
                mine = ~mine
                group, row, value, weight, arrival = group[mine], row[mine], value[mine], weight[mine], arrival[mine]
        # the new neighbours go after each row's (possibly pruned) ones
        j = np.arange(len(group)) - np.repeat(np.cumsum(arrived) - arrived, arrived)
        flat = row * self.width + self.size[row] + j
        self.nbr.reshape(-1)[flat] = value
        self.w.reshape(-1)[flat] = weight * self.scale[row]
        self.age.reshape(-1)[flat] = age_base + arrival
        self.size[rows] += arrived

        big = rows[self.scale[rows] > _RESCALE_AT]      # keep the floats finite
        if len(big):
            self.w[big] /= self.scale[big, None]
            self.scale[big] = 1.0

    def _prune(self, rows: np.ndarray) -> None:
        """Keep the `keep` strongest neighbours of these rows (ties: the older)."""
        width, keep = self.width, self.keep
        slots = np.arange(width)
        # strongest first, ties older first, empties last: complex numbers sort by real,
        # then imaginary part. Which ones are kept is all that matters (top() sorts).
        strength = np.where(slots < self.size[rows][:, None],
                            np.take(self.age, rows, axis=0) * 1j - np.take(self.w, rows, axis=0), np.inf)
        best = np.argpartition(strength, keep - 1, axis=1)[:, :keep]
        # move them (by flat index) to the front of their rows, clear the rest
        src = (rows * width)[:, None] + best
        for array, empty in ((self.nbr, -1), (self.w, 0.0), (self.age, 0)):
            array[rows, :keep] = array.reshape(-1)[src]
            array[rows, keep:] = empty
        self.size[rows] = keep

    def _refill(self, rows: np.ndarray, new_group: np.ndarray, value: np.ndarray, weight: np.ndarray,
                age: np.ndarray) -> None:
        """Rewrite these rows with the strongest `width` of their neighbours and their new
        ones (new_group: index into rows; weight: not scaled yet), ties: the older."""
        width = self.width
        held = np.arange(width) < self.size[rows][:, None]          # occupied slots
        group = np.concatenate((np.nonzero(held)[0], new_group))
        value = np.concatenate((np.take(self.nbr, rows, axis=0)[held], value))
        weight = np.concatenate((np.take(self.w, rows, axis=0)[held], weight * self.scale[rows][new_group]))
        age = np.concatenate((np.take(self.age, rows, axis=0)[held], age))
        # by row, then strongest first, ties older first: a complex argsort (real part, then
        # imaginary part), then a stable sort by row (a radix sort for 16-bit ints)
        best = np.argsort(age * 1j - weight)
        best = best[np.argsort(group[best].astype(np.uint16 if len(rows) < 1 << 16 else np.int64), kind="stable")]
        group, value, weight, age = group[best], value[best], weight[best], age[best]
        count = np.bincount(group, minlength=len(rows))
        place = np.arange(len(group)) - np.repeat(np.cumsum(count) - count, count)
        stay = place < width
        self.nbr[rows], self.w[rows], self.age[rows] = -1, 0.0, 0
        flat = rows[group[stay]] * width + place[stay]
        self.nbr.reshape(-1)[flat] = value[stay]
        self.w.reshape(-1)[flat] = weight[stay]
        self.age.reshape(-1)[flat] = age[stay]
        self.size[rows] = np.minimum(count, width)

    def _rows_for(self, keys: np.ndarray, tick: int) -> np.ndarray:
        """Rows of these (distinct) key ids, allocated for new ones; all marked touched."""
        self.row_of = grown(self.row_of, int(keys.max()) + 1, -1)
        rows = self.row_of[keys]
        new = np.flatnonzero(rows < 0)
        self.touched[rows[rows >= 0]] = tick
        if len(new):
            over = len(self) + len(new) - MAX_TRACKED
            if over > 0:       # in chunks, so that the scan for the oldest is rare
                self._evict(max(over, MAX_TRACKED // 32), tick)
            reuse = min(len(new), len(self.free))
            fresh = np.array(self.free[len(self.free) - reuse:], dtype=np.int64)
            del self.free[len(self.free) - reuse:]
            fresh = np.concatenate((fresh, np.arange(self.used, self.used + len(new) - reuse)))
            self.used += len(new) - reuse
            self._grow(self.used)
            rows[new] = fresh
            self.row_of[keys[new]] = fresh
            self.key_of[fresh] = keys[new]
            self.touched[fresh] = tick
        return rows

    def _evict(self, count: int, tick: int) -> None:
        """Free the `count` least recently touched rows (never ones touched this batch)."""
        rows = np.flatnonzero(self.key_of[:self.used] >= 0)
        rows = rows[self.touched[rows] < tick]
        if count < len(rows):
            rows = rows[np.argpartition(self.touched[rows], count)[:count]]
        self.row_of[self.key_of[rows]] = -1
        self.key_of[rows] = -1
        self.nbr[rows], self.w[rows], self.age[rows] = -1, 0.0, 0
        self.size[rows], self.scale[rows] = 0, 1.0
        self.free += rows.tolist()

    def _grow(self, rows: int) -> None:
        if rows <= len(self.size):
            return
        rows = max(rows, min(2 * len(self.size), MAX_TRACKED))
        for name, fill in (("nbr", -1), ("w", 0.0), ("age", 0), ("size", 0), ("scale", 1.0),
                           ("touched", 0), ("key_of", -1)):
            setattr(self, name, grown(getattr(self, name), rows, fill))

    def remap(self, keys: np.ndarray | None, values: np.ndarray | None) -> None:
        """Renumber key ids and/or neighbour ids after a vocabulary compaction (old -> new)."""
        if values is not None:
            self.nbr[:self.used] = values[self.nbr[:self.used]]
        if keys is not None:
            live = np.flatnonzero(self.key_of[:self.used] >= 0)
            self.key_of[live] = keys[self.key_of[live]]
            self.row_of = np.full(len(keys), -1, dtype=np.int64)
            self.row_of[self.key_of[live]] = live


class CandidateIndex:
    """Co-visitation, query -> item and trending sources, learned one batch at a time.
    One per tenant: nothing one tenant's events teach reaches another's candidates."""

    def __init__(self, trending_window_s: float = 600.0) -> None:
        self.trending_window_s = trending_window_s
        self._items, self._terms = Vocab(), Vocab()
        self._covisit = _NeighbourRows()        # item -> items
        self._by_term = _NeighbourRows()        # term -> items
        self._tick = 0                          # batches seen (the LRU clock)
        self._clock = 0                         # triples seen (neighbour ages)
        self._live_items = self._live_terms = 0  # vocabulary sizes after the last compaction
        # trending: clicks per item id in the window, and the window's batches
        self._trending = np.zeros(0, dtype=np.int64)
        self._window: deque[tuple[float, np.ndarray, np.ndarray]] = deque()
        self._newest = -np.inf
        self._trending_top: list[str] = []
        self._trending_n = -1
        self.item_generation = 0                # bumped when compaction renumbers the items

    def begin_batch(self) -> None:
        """Trending is ranked once per batch, not once per user."""
        self._trending_n = -1

    def observe_clicks(self, users: Sequence[int], items: Sequence[str], ts: Sequence[float],
                       history: Sequence[Sequence[str]], terms: Sequence[Sequence[str]]) -> None:
        """One batch's valid clicks, in batch order. users[k]: a dense per-batch user code
        (0..U-1) of click k; items[k]: its item id; ts[k]: its event time (unix s).
        history[u]: user u's last <= 3 items BEFORE this batch (oldest first);
        terms[u]: user u's last <= 4 query terms (used for the query->item source)."""
        n = len(items)
        if not n:
            return
        self._tick += 1
        x = self._items.encode(items)
        user = np.fromiter(users, dtype=np.int64, count=n)
        # Each user's sequence: 3 history slots, then their clicks in batch order, so that
        # every click's 3 previous items sit just before it in `seq` (-1 where none).
        known = self._items.encode_tails(history, _PREVS)               # (U, 3)
        clicks = np.bincount(user, minlength=len(known))
        first = np.cumsum(clicks) - clicks                              # users' first clicks
        seg = _PREVS * np.arange(len(known)) + first                    # users' segments
        seq = np.empty(known.size + n, dtype=np.int64)
        seq[(seg[:, None] + np.arange(_PREVS)).ravel()] = known.ravel()
        by_user = np.argsort(user, kind="stable")
        pos = np.empty(n, dtype=np.int64)
        pos[by_user] = (seg + _PREVS - first)[user[by_user]] + np.arange(n)
        seq[pos] = x
        prev = seq[pos[:, None] - np.arange(_PREVS, 0, -1)]             # (n, 3), oldest first
        # per (click, prev), in the per-event code's order of arrival: prev -> x weighs
        # 1.0, then x -> prev (the reverse link) 0.5
        ok = (prev >= 0) & (prev != x[:, None])
        earlier, later = prev[ok], np.broadcast_to(x[:, None], prev.shape)[ok]
        keys, values = np.empty(2 * len(earlier), dtype=np.int64), np.empty(2 * len(earlier), dtype=np.int64)
        keys[0::2], keys[1::2], values[0::2], values[1::2] = earlier, later, later, earlier
        self._covisit.merge(keys, values, np.tile([1.0, 0.5], len(earlier)), self._clock, self._tick)
        self._clock += len(keys)
        # term -> clicked item: 1.0 per click per term of the user
        term = self._terms.encode_tails(terms, _TERMS)[user]             # (n, 4)
        has = term >= 0
        if has.any():
            self._by_term.merge(term[has], np.broadcast_to(x[:, None], term.shape)[has], 1.0,
                                self._clock, self._tick)
            self._clock += term.size
        self._count_trending(x, float(max(ts)))
        self._maybe_compact()

    def observe_searches(self, terms: Sequence[Sequence[str]], results: Sequence[Sequence[str]]) -> None:
        """One batch's valid searches: each search's query terms and its result item ids."""
        count = len(terms)
        if not count:
            return
        self._tick += 1
        top = self._items.encode_tails([r[:_RESULTS] for r in results], _RESULTS)  # (S, 5)
        term = self._terms.encode(list(chain.from_iterable(terms)))
        # each term of a search -> each of its first 5 results (in rank order), 0.25
        value = top[np.repeat(np.arange(count), [len(t) for t in terms])]          # (T, 5)
        has = value >= 0
        if has.any():
            self._by_term.merge(np.broadcast_to(term[:, None], value.shape)[has], value[has], 0.25,
                                self._clock, self._tick)
            self._clock += value.size
        self._maybe_compact()

    def _count_trending(self, items: np.ndarray, newest: float) -> None:
        """Clicks per item in the window, a batch at a time: a batch leaves the window once
        its newest click is older than the newest click seen minus the window."""
        items = np.sort(items)
        starts = run_starts(items)
        ids, counts = items[starts], np.diff(starts, append=len(items))
        self._trending = grown(self._trending, len(self._items), 0)
        self._trending[ids] += counts
        self._window.append((newest, ids, counts))
        self._newest = max(self._newest, newest)
        horizon = self._newest - self.trending_window_s
        while self._window and self._window[0][0] < horizon:
            _, ids, counts = self._window.popleft()
            self._trending[ids] -= counts

    def _maybe_compact(self) -> None:
        """Bound the vocabularies: once one holds twice as many names as were in use after
        its last compaction (and twice MAX_TRACKED), drop the names nothing refers to.
        Ids are renumbered everywhere they are held, so none is ever reused stale."""
        if len(self._items) > 2 * max(self._live_items, MAX_TRACKED):
            live = np.zeros(len(self._items) + 1, dtype=bool)   # [-1]: the empty slot
            for rows in (self._covisit, self._by_term):
                live[rows.nbr[:rows.used].ravel()] = True
            live[self._covisit.key_of[:self._covisit.used]] = True
            counted = np.flatnonzero(self._trending)
            live[counted] = True
            remap = self._items.compact(live[:-1])
            self._covisit.remap(remap, remap)
            self._by_term.remap(None, remap)
            trending, self._trending = self._trending, np.zeros(len(self._items), dtype=np.int64)
            self._trending[remap[counted]] = trending[counted]
            self._window = deque((t, remap[ids], counts) for t, ids, counts in self._window)
            self._live_items = len(self._items)
            self.item_generation += 1
        if len(self._terms) > 2 * max(self._live_terms, MAX_TRACKED):
            live = np.zeros(len(self._terms) + 1, dtype=bool)
            live[self._by_term.key_of[:self._by_term.used]] = True
            self._by_term.remap(self._terms.compact(live[:-1]), None)
            self._live_terms = len(self._terms)

    def ranked(self, source: str, key: str) -> list[str]:
        """A key's strongest neighbours (at most NEIGHBOURS), best first: source "covisit"
        (key: an item) or "query" (key: a term)."""
        ids = self.neighbour_ids(source, [[key]], 1)[0]
        names = self._items.names
        return [names[i] for i in ids[ids >= 0].tolist()]

    def neighbour_ids(self, source: str, keys: Sequence[Sequence[str]], width: int) -> np.ndarray:
        """Per row of keys (items for "covisit", terms for "query"), the first `width` keys'
        strongest neighbours end to end, each key's best first, as this index's item ids
        (see `item_names`): (len(keys), width * NEIGHBOURS), -1 in unused slots. A key never
        seen has none. The batch's distinct keys are ranked in one sort."""
        vocab, rows = (self._items, self._covisit) if source == "covisit" else (self._terms, self._by_term)
        out = np.full((len(keys), width, rows.keep), -1, dtype=np.int64)
        lens = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
        if len(lens) and lens.max() > width:
            keys = [row[:width] for row in keys]
            lens = np.minimum(lens, width)
        flat = list(chain.from_iterable(keys))
        if not flat:
            return out.reshape(len(keys), -1)
        ids = np.fromiter(map(vocab.ids.get, flat, repeat(-1)), dtype=np.int64, count=len(flat))
        row = rows.rows_of(ids)
        has = np.flatnonzero(row >= 0)
        if len(has):
            distinct, inverse = np.unique(row[has], return_inverse=True)
            top, _ = rows.top(distinct)                     # empty slots hold -1
            owner = np.repeat(np.arange(len(keys)), lens)
            slot = np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)
            out[owner[has], slot[has]] = top[inverse]
        return out.reshape(len(keys), -1)

    def cooccurring(self, items: Sequence[str], index_of: Callable[[list[str]], list[int]]
                    ) -> dict[str, tuple[list[int], list[float]]]:
        """Each item's co-visitation neighbours as `index_of` maps their names (e.g. a model's
        indices), with their decayed weights, strongest first; neighbours it maps to 0 (e.g.
        unknown to the model) are left out, and so are items never seen."""
        get = self._items.ids.get                 # dict.get: never adds a name
        found = [(item, self._covisit.row(get(item))) for item in items]
        known = [(item, row) for item, row in found if row >= 0]
        if not known:
            return {}
        ids, weights, counts = self._covisit.top_weighted(np.array([row for _, row in known], dtype=np.int64))
        real = np.arange(ids.shape[1]) < counts[:, None]
        distinct, inverse = np.unique(ids[real], return_inverse=True)
        mapped = np.asarray(index_of([self._items.names[i] for i in distinct.tolist()]), dtype=np.int64)
        indices = np.zeros(ids.shape, dtype=np.int64)
        indices[real] = mapped[inverse]
        out = {}
        for (item, _), row, row_weights in zip(known, indices, weights):
            mine = row > 0
            out[item] = (row[mine].tolist(), row_weights[mine].tolist())
        return out

    def item_names(self, start: int = 0) -> list[str]:
        """The items this index knows (every one it has seen, until compaction drops the
        unused), in the order first seen: only names from `start` on. The list only grows
        between compactions (see `item_generation`)."""
        return self._items.names[start:]

    def trending_top(self, n: int) -> list[str]:
        """The n most clicked items in the window, best first (ties: the earlier-known item)."""
        if self._trending_n < n:
            counted = np.flatnonzero(self._trending)
            best = counted[np.lexsort((counted, -self._trending[counted]))[:n]]
            names = self._items.names
            self._trending_top, self._trending_n = [names[i] for i in best.tolist()], n
        return self._trending_top[:n]


SOURCES = ("covisit", "query", "embedding", "trending", "catalog")  # catalog: any known item, last resort


def merge_own(own: np.ndarray, own_codes: np.ndarray, blocked: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's own candidates merged, vectorised over the rows: first occurrence wins (so
    an earlier column, a higher-priority source, keeps an item), blocked items and 0 (an item
    the model lacks) dropped, at most n kept.

    own: (B, P) item indices in source-priority order, -1 in empty slots; own_codes: (P,) the
    source code of each column; blocked: (B, K), -1 padding. Returns (B, n) int64, each row's
    items first and 0 after, and the number kept per source code.
    """
    rows, width = own.shape
    out = np.zeros((rows, n), dtype=np.int64)
    # (item, column) pairs sorted within each row, the blocked items in columns before the
    # row's own: an own item is kept where its pair is the item's first (a blocked one's is first)
    k = blocked.shape[1]
    both = np.concatenate([np.maximum(blocked, 0), np.maximum(own, 0)], axis=1)
    pairs = np.sort(both * (k + width) + np.arange(k + width), axis=1)
    item, column = np.divmod(pairs, k + width)
    keep = item > 0
    keep[:, 1:] &= item[:, 1:] != item[:, :-1]
    keep &= column >= k
    chosen = np.zeros(own.shape, dtype=bool)
    chosen[np.nonzero(keep)[0], column[keep] - k] = True          # back in column (priority) order
    place = np.cumsum(chosen, axis=1) - 1
    chosen &= place < n
    r, c = np.nonzero(chosen)
    out[r, place[r, c]] = own[r, c]
    return out, np.bincount(own_codes[c], minlength=int(own_codes.max(initial=0)) + 1)


def fill_shared(candidates: np.ndarray, blocked: np.ndarray, shared: Sequence[int],
                shared_codes: Sequence[int]) -> np.ndarray:
    """Fill each row's padding (the 0s after its own items), in place, with the first
    `shared` items (trending, catalog: the same list for every row) that the row neither
    has nor blocks. Vectorised over the rows.

    blocked: (B, K), -1 padding; shared: unique, no 0. Returns the number of picks per
    shared code (bincount over `shared_codes`).
    """
    picked = np.zeros(max(shared_codes, default=0) + 1, dtype=np.int64)
    if not len(shared) or not len(candidates):
        return picked
    n = candidates.shape[1]
    lens = (candidates > 0).sum(axis=1)
    shared = np.asarray(shared, dtype=np.int64)
    # taken[r, j]: shared[j] is already in row r or blocked for it (found by binary search:
    # nothing here is sized by the catalog)
    order = np.argsort(shared)
    ranked = shared[order]
    mine = np.concatenate([candidates, blocked], axis=1)
    at = np.minimum(np.searchsorted(ranked, mine), len(ranked) - 1)
    r, c = np.nonzero((ranked[at] == mine) & (mine > 0))
    taken = np.zeros((len(candidates), len(shared)), dtype=bool)
    taken[r, order[at[r, c]]] = True
    free = ~taken
    slot = np.cumsum(free, axis=1)                      # 1-based slot among the row's free items
    use = free & (slot <= (n - lens)[:, None])
    r, c = np.nonzero(use)
    candidates[r, lens[r] + slot[r, c] - 1] = shared[c]
    picked += np.bincount(np.asarray(shared_codes, dtype=np.int64)[c], minlength=len(picked))
    return picked
