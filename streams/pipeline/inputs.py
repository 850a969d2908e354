"""Model inputs for one scorer's rows: histories (B, T), candidates (B, C), query terms (B, 8).

A row's candidates come only from what its tenant's own stream has shown: co-visitation,
query and trending from the tenant's candidate index, and the model's nearest items and
catalog restricted to items seen in that tenant's events. One model serves every tenant
and its item list is all of theirs together, so without the restriction one tenant's
items could reach another's recommendations through the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reckon.streams.pipeline.candidates import SOURCES, CandidateIndex, fill_from_shared, first_unique

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
    """Which of a model's items a tenant's index has seen: a byte per model index."""
    mask: bytearray
    looked_up: int              # index item names mapped so far
    generation: int             # the index's item_generation when built
    items: int                  # the scorer's items then (cold start adds rows)
    unknown: list[str] = field(default_factory=list)   # names it had no row for: asked again when it grows


class InputBuilder:
    def __init__(self, candidates: int) -> None:
        self.n = candidates
        self._nearest: dict[str, dict[str, list[int]]] = {}   # version -> item -> neighbours
        self._known: dict[tuple[str, str], _Known] = {}

    def build(self, rows: Sequence[tuple[str, dict]], index_of: Callable[[str], CandidateIndex],
              scorer: Any) -> Inputs:
        """Inputs for rows of (tenant, state), in order: each tenant's rows are built from
        its own index, then put back in row order."""
        by_tenant: dict[str, list[int]] = {}
        for row, (tenant, _) in enumerate(rows):
            by_tenant.setdefault(tenant, []).append(row)
        if len(by_tenant) == 1:
            tenant = rows[0][0]
            return self._for_tenant(tenant, [state for _, state in rows], index_of(tenant), scorer)
        parts = [(positions, self._for_tenant(tenant, [rows[p][1] for p in positions], index_of(tenant), scorer))
                 for tenant, positions in by_tenant.items()]
        out = Inputs(np.zeros((len(rows), scorer.max_len), dtype=np.int64),
                     np.zeros((len(rows), self.n), dtype=np.int64), np.zeros((len(rows), 8), dtype=np.int64),
                     [0] * len(SOURCES))
        for positions, part in parts:
            out.histories[positions], out.candidates[positions], out.terms[positions] = \
                part.histories, part.candidates, part.terms
            out.sources = [a + b for a, b in zip(out.sources, part.sources)]
        return out

    def _for_tenant(self, tenant: str, states: list[dict], index: CandidateIndex, scorer: Any) -> Inputs:
        """One tenant's rows. Per row only the user's own candidates are merged in Python
        (first_unique); the trending/catalog fill, the same list for every row, is
        vectorised (fill_from_shared)."""
        n, t = self.n, scorer.max_len
        lookup = scorer.item_indices
        known = self._known_mask(tenant, index, scorer)
        index.begin_batch()
        covisit = index.ranked_many("covisit", {i for s in states for i in s["items"][-5:]}, lookup)
        by_term = index.ranked_many("query", {w for s in states for w in s["terms"][-3:]}, lookup)
        nearest = self._nearest_items(scorer, {i for s in states for i in s["items"][-2:]})
        shared = dict.fromkeys(lookup(index.trending_top(n)), SOURCES.index("trending"))
        for i in np.flatnonzero(np.frombuffer(known, dtype=np.uint8))[:n].tolist():   # the catalog
            shared.setdefault(i, SOURCES.index("catalog"))
        shared.pop(0, None)
        histories: list[int] = []
        terms: list[int] = []
        personal: list[list[int]] = []
        blocked: list[list[int]] = []
        own_counts = [0, 0, 0]
        for state in states:
            items = state["items"]
            seen = lookup(items[-t:])
            if 0 in seen:
                seen = [i for i in seen if i]
            histories += [0] * (t - len(seen))          # left-padded
            histories += seen
            q = scorer.query_term_ids(state["terms"][-8:])[:8] if state["terms"] else []
            terms += q
            terms += [0] * (8 - len(q))
            recent = items[-5:][::-1]
            parts = (_concat([covisit[i] for i in recent], n // 2),
                     _concat([by_term[w] for w in state["terms"][-3:]], n // 4),
                     _concat([[i for i in nearest.get(item, ()) if known[i]] for item in recent[:2]], n // 4))
            bought = lookup(state["bought"])
            own, counts = first_unique(parts, {0, *bought}, n)   # 0: an item the model does not know
            personal.append(own)
            blocked.append(bought)
            own_counts = [a + b for a, b in zip(own_counts, counts)]
        candidates, shared_counts = fill_from_shared(personal, blocked, list(shared), list(shared.values()), n)
        rows = len(states)
        return Inputs(np.array(histories, dtype=np.int64).reshape(rows, t), candidates,
                      np.array(terms, dtype=np.int64).reshape(rows, 8),
                      own_counts + shared_counts.tolist()[len(own_counts):])

    def _known_mask(self, tenant: str, index: CandidateIndex, scorer: Any) -> bytearray:
        """A byte per model item index, 1 where the tenant's index has seen the item; kept
        up to date by looking up only the names the index learned since the last call, and
        the names the model lacked when it gains rows (cold start)."""
        key = (tenant, scorer.version)
        known = self._known.get(key)
        if known is None or known.generation != index.item_generation:
            if len(self._known) >= MAX_KNOWN_MASKS:
                self._known.clear()
            known = self._known[key] = _Known(bytearray(scorer.num_items + 1), 0, index.item_generation,
                                              scorer.num_items)
        if scorer.num_items != known.items:
            known.mask.extend(bytes(scorer.num_items + 1 - len(known.mask)))
            known.items = scorer.num_items
            retry, known.unknown = known.unknown, []
            _mark(known, retry, scorer)
        names = index.item_names(known.looked_up)
        if names:
            _mark(known, names, scorer)
            known.looked_up += len(names)
        return known.mask

    def forget_nearest(self, version: str, items: list[str]) -> None:
        """Items whose vectors moved (cold start): their nearest items are found again."""
        cache = self._nearest.get(version, {})
        for item in items:
            cache.pop(item, None)

    def _nearest_items(self, scorer: Any, items: set[str], n: int = 10) -> dict[str, list[int]]:
        """The model's nearest items (as indices) to every item in the batch: one call for
        the items not cached yet. Trained embeddings are fixed per version; an item whose
        estimate (cold start) moves is dropped from the cache when it does (`forget_nearest`)."""
        cache = self._nearest.setdefault(scorer.version, {})
        if len(cache) > MAX_NEAREST_CACHED:
            cache.clear()
        missing = [(item, scorer.item_index(item)) for item in items if item not in cache]
        missing = [(item, i) for item, i in missing if i > 0]
        if missing:
            near = scorer.nearest_items(np.array([i for _, i in missing], dtype=np.int64), n)
            cache.update((item, row.tolist()) for (item, _), row in zip(missing, near))
        return cache


def _mark(known: _Known, names: list[str], scorer: Any) -> None:
    indices = scorer.item_indices(names)
    np.frombuffer(known.mask, dtype=np.uint8)[indices] = 1
    known.mask[0] = 0                                 # padding, or an item the model lacks
    known.unknown += [name for name, i in zip(names, indices) if i == 0]


def _concat(lists: list[Sequence[int]], limit: int) -> list[int]:
    """The lists end to end, cut to `limit` (list.extend: the copying stays in C)."""
    out: list[int] = []
    for part in lists:
        out.extend(part)
        if len(out) >= limit:
            return out[:limit]
    return out
