"""Ranking metrics from 0-based ranks (rank 0 = the target scored highest)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["hit_rate", "mrr", "ndcg", "rank_of_target", "summarize"]


def rank_of_target(scores: np.ndarray, target_col: np.ndarray) -> np.ndarray:
    """scores (n, C), target_col (n,) column of each target -> (n,) 0-based ranks.

    Rank = number of candidates scored strictly higher than the target; a tie with the
    target is counted against it (pessimistic), so a constant scorer ranks last, not first.
    """
    target = scores[np.arange(len(scores)), target_col][:, None]
    higher = (scores > target).sum(axis=1)
    ties = (scores == target).sum(axis=1) - 1
    return (higher + ties).astype(np.int64)


def hit_rate(ranks: np.ndarray, k: int) -> float:
    """HR@K (= Recall@K = P@20 in SR-GNN's tables, one target per example)."""
    return float(np.mean(ranks < k)) if len(ranks) else 0.0


def ndcg(ranks: np.ndarray, k: int) -> float:
    """NDCG@K with one relevant item: 1 / log2(rank + 2) inside the top K."""
    if not len(ranks):
        return 0.0
    return float(np.mean(np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)))


def mrr(ranks: np.ndarray, k: int) -> float:
    """MRR@K: 1 / (rank + 1) inside the top K, else 0."""
    if not len(ranks):
        return 0.0
    return float(np.mean(np.where(ranks < k, 1.0 / (ranks + 1.0), 0.0)))


def summarize(ranks: np.ndarray, ks: Iterable[int] = (10, 20)) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in ks:
        out[f"hr@{k}"] = hit_rate(ranks, k)
        out[f"ndcg@{k}"] = ndcg(ranks, k)
        out[f"mrr@{k}"] = mrr(ranks, k)
    out["count"] = float(len(ranks))
    return out
