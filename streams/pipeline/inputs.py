"""Model inputs for one scorer's rows: histories (B, T), candidates (B, C), query terms (B, 8).

A row's candidates come only from what its tenant's own stream has shown: co-visitation,
query and trending from the tenant's candidate index, and the model's nearest items and
catalog restricted to items seen in that tenant's events. One model serves every tenant
and its item list is all of theirs together, so without the restriction one tenant's
items could reach another's recommendations through the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reckon.streams.pipeline.arrays import grown, tails
from reckon.streams.pipeline.candidates import SOURCES, CandidateIndex, fill_shared, merge_own

MAX_NEAREST_CACHED = 200_000    # items whose model neighbours are kept, per version
MAX_KNOWN_MASKS = 256           # (tenant, version) item masks kept


@dataclass
class Inputs:
    histories: np.ndarray      # (B, T) int64, left-padded
    candidates: np.ndarray     # (B, C) int64, 0 = padding
    terms: np.ndarray          # (B, 8) int64
    sources: list[int]         # candidates per source, SOURCES order


@dataclass
class _Known:
    """What a tenant's index has seen, in a model's terms: a byte per model index (1: seen),
    and each of the index's item ids as a model index (0: the model lacks it)."""
    mask: bytearray
    model_of: np.ndarray        # index item id -> model index; the first `looked_up` are set
    looked_up: int              # index item names mapped so far
    generation: int             # the index's item_generation when built
    items: int                  # the scorer's items then (cold start adds rows)
    unknown: list[tuple[int, str]] = field(default_factory=list)   # (id, name) without a row: asked again when it grows

    def model_indices(self, ids: np.ndarray) -> np.ndarray:
        """Index item ids -> model indices; -1 (an empty slot) stays -1."""
        if not self.looked_up:          # an index that has seen no item has no ids to map
            return np.full(ids.shape, -1, dtype=np.int64)
        return np.where(ids >= 0, self.model_of[np.maximum(ids, 0)], -1)


class InputBuilder:
    def __init__(self, candidates: int) -> None:
        self.n = candidates
        self._nearest: dict[str, dict[int, list[int]]] = {}   # version -> item index -> neighbours
        self._known: dict[tuple[str, str], _Known] = {}

    def build(self, rows: Sequence[tuple[str, dict]], index_of: Callable[[str], CandidateIndex],
              scorer: Any) -> Inputs:
        """Inputs for rows of (tenant, state), in order, a source at a time for all of them: a
        row's own candidates are its recent items' co-visitation neighbours, its last query
        terms' items and its latest items' nearest items by the model (only items its tenant
        has seen); then its tenant's trending and catalog items. Only what a tenant's index
        answers is asked per tenant; everything else is one pass over all rows, so a batch
        of many tenants costs little more than one of few."""
        n, t = self.n, scorer.max_len
        if not rows:
            return Inputs(np.zeros((0, t), dtype=np.int64), np.zeros((0, n), dtype=np.int64),
                          np.zeros((0, 8), dtype=np.int64), [0] * len(SOURCES))
        lookup = scorer.item_indices
        by_tenant: dict[str, list[int]] = {}
        for row, (tenant, _) in enumerate(rows):
            by_tenant.setdefault(tenant, []).append(row)
        # rows grouped by tenant, so that each tenant's are one slice; put back in order at the end
        order = [row for positions in by_tenant.values() for row in positions]
        states = [rows[row][1] for row in order]
        spans, start = {}, 0
        for tenant, positions in by_tenant.items():
            spans[tenant], start = slice(start, start + len(positions)), start + len(positions)
        recent = [state["items"][-5:][::-1] for state in states]      # newest first
        nearest = self._nearest_of_latest(scorer, recent)
        covisit, by_term, shared = [], [], {}
        for tenant, span in spans.items():
            index = index_of(tenant)
            known = self._known_items(tenant, index, scorer)
            index.begin_batch()
            covisit.append(known.model_indices(index.neighbour_ids("covisit", recent[span], 5)))
            last_terms = [state["terms"][-3:] for state in states[span]]
            by_term.append(known.model_indices(index.neighbour_ids("query", last_terms, 3)))
            near = nearest[span]                       # a view: only items the tenant has seen
            near[np.frombuffer(known.mask, dtype=np.uint8)[np.maximum(near, 0)] == 0] = -1
            shared[tenant] = self._shared(index, known, lookup)
        own = np.hstack([_leftmost(np.vstack(covisit), n // 2), _leftmost(np.vstack(by_term), n // 4),
                         _leftmost(nearest, n // 4)])
        codes = np.repeat(np.arange(3), [n // 2, n // 4, own.shape[1] - n // 2 - n // 4])
        bought = [state["bought"] for state in states]
        blocked = tails(bought, max(map(len, bought), default=0), -1, lookup=lookup)
        candidates, own_picked = merge_own(own, codes, blocked, n)
        sources = own_picked.tolist() + [0] * (len(SOURCES) - len(own_picked))
        for tenant, span in spans.items():
            for code, count in enumerate(fill_shared(candidates[span], blocked[span], *shared[tenant]).tolist()):
                sources[code] += count
        # histories without the items the model lacks, left-padded
        histories = tails([state["items"] for state in states], t, 0, lookup=lookup)
        if not histories.all():
            histories = np.take_along_axis(histories, np.argsort(histories != 0, axis=1, kind="stable"), axis=1)
        terms = tails([scorer.query_term_ids(state["terms"][-8:]) for state in states], 8, 0, right=False)
        if len(spans) > 1:
            back = np.argsort(order)
            histories, candidates, terms = histories[back], candidates[back], terms[back]
        return Inputs(histories, candidates, terms, sources)

    def _shared(self, index: CandidateIndex, known: _Known, lookup: Callable) -> tuple[list[int], list[int]]:
        """A tenant's candidates for every row (model indices, no 0) and their source codes:
        its trending items, then its catalog (any item it has seen)."""
        shared = dict.fromkeys(lookup(index.trending_top(self.n)), SOURCES.index("trending"))
        for i in np.flatnonzero(np.frombuffer(known.mask, dtype=np.uint8))[:self.n].tolist():
            shared.setdefault(i, SOURCES.index("catalog"))
        shared.pop(0, None)
        return list(shared), list(shared.values())

    def _known_items(self, tenant: str, index: CandidateIndex, scorer: Any) -> _Known:
        """The tenant's index's items in the model's terms (`_Known`), kept up to date by
        looking up only the names the index learned since the last call, and the names the
        model lacked when it gains rows (cold start)."""
        key = (tenant, scorer.version)
        known = self._known.get(key)
        if known is None or known.generation != index.item_generation:
            if len(self._known) >= MAX_KNOWN_MASKS:
                self._known.clear()
            known = self._known[key] = _Known(bytearray(scorer.num_items + 1), np.zeros(0, dtype=np.int64), 0,
                                              index.item_generation, scorer.num_items)
        if scorer.num_items != known.items:
            known.mask.extend(bytes(scorer.num_items + 1 - len(known.mask)))
            known.items = scorer.num_items
            retry, known.unknown = known.unknown, []
            _mark(known, [i for i, _ in retry], [name for _, name in retry], scorer)
        names = index.item_names(known.looked_up)
        if names:
            ids = range(known.looked_up, known.looked_up + len(names))
            known.looked_up += len(names)
            known.model_of = grown(known.model_of, known.looked_up, 0)
            _mark(known, ids, names, scorer)
        return known

    def forget_nearest(self, version: str, items: list[int]) -> None:
        """Items (model indices) whose vectors moved (cold start): their nearest items are found again."""
        cache = self._nearest.get(version, {})
        for item in items:
            cache.pop(item, None)

    def _nearest_of_latest(self, scorer: Any, recent: list[list[str]], n: int = 10) -> np.ndarray:
        """(B, 2 * n or fewer): the model's nearest items to each row's two latest items
        (newest first), -1 where a row has none; one model call for the items not cached yet.
        Trained embeddings are fixed per version; an item whose estimate (cold start) moves
        is dropped from the cache when it does (`forget_nearest`)."""
        latest = tails([items[:2] for items in recent], 2, 0, right=False, lookup=scorer.item_indices)
        cache = self._nearest.setdefault(scorer.version, {})
        if len(cache) > MAX_NEAREST_CACHED:
            cache.clear()
        items = np.unique(latest[latest > 0])
        missing = [i for i in items.tolist() if i not in cache]
        if missing:
            near = scorer.nearest_items(np.array(missing, dtype=np.int64), n)
            cache.update(zip(missing, near.tolist()))
        if not len(items):
            return np.full((len(recent), 0), -1, dtype=np.int64)
        rows = np.array([cache[i] for i in items.tolist()], dtype=np.int64).reshape(len(items), -1)
        rows = np.vstack([rows, np.full((1, rows.shape[1]), -1, dtype=np.int64)])   # the last: no item
        return rows[np.where(latest > 0, np.searchsorted(items, latest), len(items))].reshape(len(recent), -1)


def _mark(known: _Known, ids: Iterable[int], names: list[str], scorer: Any) -> None:
    indices = scorer.item_indices(names)
    known.model_of[list(ids)] = indices
    np.frombuffer(known.mask, dtype=np.uint8)[indices] = 1
    known.mask[0] = 0                                 # padding, or an item the model lacks
    known.unknown += [(i, name) for i, name, index in zip(ids, names, indices) if index == 0]


def _leftmost(matrix: np.ndarray, limit: int) -> np.ndarray:
    """Each row's values other than -1, in order, the first `limit` of them: (B, limit), -1 after."""
    out = np.full((len(matrix), limit), -1, dtype=np.int64)
    filled = matrix >= 0
    place = np.cumsum(filled, axis=1) - 1
    r, c = np.nonzero(filled & (place < limit))
    out[r, place[r, c]] = matrix[r, c]
    return out
