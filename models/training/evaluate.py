"""Evaluation protocols: full ranking over every item, and SASRec's 100 sampled negatives.

Two entry points share the protocols: ``evaluate_model`` (a PyTorch SASRec, fast
full ranking through one matrix product) and ``evaluate_scorer`` (any
``score(history, candidates, query_terms)`` callable, e.g. an ONNX ``Scorer``),
so the exported variants are measured with the same code as the trained model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import numpy as np
import torch

from reckon.models.training.data import EvalSet
from reckon.models.training.metrics import rank_of_target, summarize
from reckon.models.training.sasrec import SASRec, latest_recency

__all__ = ["Protocol", "evaluate_model", "evaluate_scorer", "model_ranks", "pad_left", "sample_negatives"]

Protocol = Literal["full", "sampled100"]
ScoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]


def pad_left(histories: list[np.ndarray], max_len: int) -> np.ndarray:
    """Keep the last max_len items of each history, left-pad with 0 -> (n, max_len) int64."""
    out = np.zeros((len(histories), max_len), dtype=np.int64)
    for i, h in enumerate(histories):
        h = h[-max_len:]
        if len(h):
            out[i, max_len - len(h):] = h
    return out


def sample_negatives(data: EvalSet, num_items: int, n: int = 100, seed: int = 0) -> np.ndarray:
    """(len(data), n) items drawn uniformly from 1..num_items, never the target nor an
    item in ``data.seen[i]`` (the user's whole sequence), without repeats."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(data), n), dtype=np.int64)
    for i in range(len(data)):
        banned = _banned(data, i)
        if num_items - len(banned) < n:
            raise ValueError(f"example {i}: fewer than {n} items left to sample as negatives")
        picked: list[int] = []
        chosen: set[int] = set()
        while len(picked) < n:
            for x in rng.integers(1, num_items + 1, size=2 * n).tolist():
                if x not in banned and x not in chosen:
                    chosen.add(x)
                    picked.append(x)
                    if len(picked) == n:
                        break
        out[i] = picked
    return out


def negatives_fit(data: EvalSet, num_items: int, n: int = 100) -> bool:
    """Whether every example has `n` items to sample as negatives (neither its target nor an
    item its user touched): a catalog of a few dozen items has not."""
    return all(num_items - len(_banned(data, i)) >= n for i in range(len(data)))


def _banned(data: EvalSet, i: int) -> set[int]:
    """What example i may not sample: its target and every item its user touched."""
    banned = {int(data.targets[i])}
    if data.seen is not None:
        banned.update(data.seen[i].tolist())
    return banned


def _candidates(data: EvalSet, protocol: Protocol, num_items: int, seed: int) -> np.ndarray | None:
    if protocol == "full":
        return None
    negatives = sample_negatives(data, num_items, 100, seed)
    return np.concatenate([data.targets[:, None], negatives], axis=1)  # target in column 0


def evaluate_model(
    model: SASRec,
    data: EvalSet,
    protocol: Protocol = "full",
    ks: Iterable[int] = (10, 20),
    batch_size: int = 512,
    seed: int = 0,
) -> dict[str, float]:
    """HR/NDCG/MRR@K of a PyTorch model (eval mode is restored to the caller's mode)."""
    return summarize(model_ranks(model, data, protocol, batch_size, seed), ks)


@torch.no_grad()
def model_ranks(model: SASRec, data: EvalSet, protocol: Protocol = "full", batch_size: int = 512,
                seed: int = 0) -> np.ndarray:
    """Each example's 0-based rank of its target (metrics.rank_of_target) under ``model``."""
    was_training = model.training
    model.eval()
    cfg = model.config
    device = model.item_emb.weight.device
    cands = _candidates(data, protocol, cfg.num_items, seed)
    hist = pad_left(data.histories, cfg.max_len)
    ranks = []
    for lo in range(0, len(data), batch_size):
        h = torch.from_numpy(hist[lo : lo + batch_size]).to(device)
        q = None
        if data.terms is not None and cfg.query_buckets:
            q = torch.from_numpy(data.terms[lo : lo + batch_size]).to(device)
        rep = model.represent_last(h, q)  # (b, H)
        if cands is None:
            scores = model.add_repeat_all(model.logits_all(rep), h, latest_recency(h))  # (b, N + 1)
            scores[:, 0] = float("-inf")  # padding is never a candidate
            col = data.targets[lo : lo + batch_size]
        else:
            c = torch.from_numpy(cands[lo : lo + batch_size]).to(device)
            scores = model.candidate_scores(rep, h, c)
            col = np.zeros(len(c), dtype=np.int64)
        ranks.append(rank_of_target(scores.float().cpu().numpy(), col))
    model.train(was_training)
    return np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)


def evaluate_scorer(
    score: ScoreFn,
    data: EvalSet,
    num_items: int,
    max_len: int,
    protocol: Protocol = "full",
    ks: Iterable[int] = (10, 20),
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Same protocols through a numpy ``score(history, candidates, query_terms)``."""
    cands = _candidates(data, protocol, num_items, seed)
    hist = pad_left(data.histories, max_len)
    if cands is None:
        batch_size = max(1, min(batch_size, 2_000_000 // max(num_items, 1)))  # bound (b, N) memory
        every = np.arange(1, num_items + 1, dtype=np.int64)
    ranks = []
    for lo in range(0, len(data), batch_size):
        h = hist[lo : lo + batch_size]
        q = None if data.terms is None else data.terms[lo : lo + batch_size]
        if cands is None:
            c = np.broadcast_to(every, (len(h), num_items))
            col = data.targets[lo : lo + batch_size] - 1
        else:
            c = cands[lo : lo + batch_size]
            col = np.zeros(len(h), dtype=np.int64)
        ranks.append(rank_of_target(np.asarray(score(h, np.ascontiguousarray(c), q), dtype=np.float32), col))
    return summarize(np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64), ks)
