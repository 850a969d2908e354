"""Cold start between retrains: rows in a scorer's item table for items its version never saw.

After each batch is learned, every item clicked in the batch that a scorer has no
trained row for is (re-)estimated from its co-visitation neighbours the scorer knows
(models/serving/coldstart.py: their weighted mean vector). From then on the item can be
a candidate, can be scored and counts in histories; each click on it re-estimates it
from the evidence so far, until a retrained version learns it for real.

Bounds: an item needs `min_weight` of co-visitation with known items first (one click
after it weighs 1.0, one before it 0.5), and a scorer takes at most `max_items`
estimated items (re-estimates go on; new ones wait for the next version).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from reckon.models.serving.coldstart import estimate_vectors
from reckon.streams.pipeline.candidates import CandidateIndex


class ColdStart:
    def __init__(self, min_weight: float = 1.0, max_items: int = 100_000) -> None:
        self.min_weight = min_weight
        self.max_items = max_items

    def update(self, index: CandidateIndex, scorers: Iterable[Any], items: Iterable[str]) -> dict[str, list[int]]:
        """(Re-)estimate these items for each extendable scorer lacking a trained row for
        them; returns the rows set (the items' indices), by scorer version."""
        names = list(set(items))
        done: dict[str, list[int]] = {}
        for scorer in {id(s): s for s in scorers}.values():   # e.g. both arms of an A/B split
            if names and scorer.extendable:
                done.setdefault(scorer.version, []).extend(self._update(index, scorer, names))
        return {version: items for version, items in done.items() if items}

    def _update(self, index: CandidateIndex, scorer: Any, names: list[str]) -> list[int]:
        trained = scorer.trained_items
        todo = [(name, i) for name, i in zip(names, scorer.item_indices(names)) if i == 0 or i > trained]
        if not todo:
            return []
        room = self.max_items - (scorer.num_items - trained)
        new = [name for name, i in todo if i == 0][:max(room, 0)]
        todo_names = [name for name, i in todo if i > 0] + new
        evidence = index.cooccurring(todo_names, scorer.item_indices)
        ready = [(name, n) for name, n in evidence.items() if sum(n[1]) >= self.min_weight]
        if not ready:
            return []
        width = max(len(n[0]) for _, n in ready)
        neighbours = np.zeros((len(ready), width), dtype=np.int64)
        weights = np.zeros((len(ready), width))
        for row, (_, (indices, w)) in enumerate(ready):
            neighbours[row, :len(indices)] = indices
            weights[row, :len(w)] = w
        vectors = estimate_vectors(scorer.item_vectors(neighbours), weights)
        return scorer.set_estimates([name for name, _ in ready], vectors)
