"""Cold start: a vector for an item a version never saw, from the items it co-occurs with.

The estimate is the mean of the known neighbours' vectors weighted by their
co-occurrence raised to the 4th power (`SHARPEN`), scaled to their weighted mean length.
Why this works for this model: input and output item embeddings are tied and trained to
predict the next item, so items that follow one another in sessions end up close
(tests/models/serving/test_scorer.py checks it); an item seen next to a few known ones
most likely belongs where they are. Why the rescaling: a mean of vectors pointing
different ways is shorter than each of them, and with dot-product scores a short vector
would rank the item low for every user. Why the sharpening: an item's strongest links
are the ones sessions repeat; weak ones are often incidental (the item a user clicked
before, in another session), and averaging them all drifts toward the catalogue's mean.
The power was chosen on drifted generated traffic by the hit rate `reckon bench
coldstart` measures, over plain weights, the 3 strongest neighbours only, and powers 2
and 8.

What it is good for: ranking a new item among candidates the stream proposes (its
co-visitation neighbours, trending items), which is how serving uses it, and starting a
retrain's new rows. It is not a trained vector: ranked against the whole catalogue by
the model alone, estimated items crowd out trained ones.

The same function serves the online path (neighbours from the stream's co-visitation
rows, streams/pipeline/coldstart.py) and warm-started retraining (neighbours counted in
the training sequences, the new rows' starting point).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SHARPEN", "estimate_vectors"]

SHARPEN = 4   # co-occurrence weights are raised to this power (see above)


def estimate_vectors(vectors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """vectors (K, M, H): each new item's M neighbours' vectors; weights (K, M) >= 0, 0 where
    a slot is empty -> (K, H) float32. A row whose weights are all 0 gets a zero vector."""
    w = np.asarray(weights, dtype=np.float64) ** SHARPEN
    v = np.asarray(vectors, dtype=np.float64)
    total = w.sum(axis=1, keepdims=True)                                   # (K, 1)
    safe = np.where(total > 0, total, 1.0)
    mean = np.einsum("km,kmh->kh", w, v) / safe                            # (K, H)
    length = (w * np.linalg.norm(v, axis=2)).sum(axis=1, keepdims=True) / safe
    direction = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    return (direction * length).astype(np.float32)
