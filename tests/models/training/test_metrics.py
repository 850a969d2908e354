import math

import numpy as np

from reckon.models.training.metrics import hit_rate, mrr, ndcg, rank_of_target, summarize


def test_rank_of_target_counts_higher_and_ties() -> None:
    scores = np.array([[0.9, 0.5, 0.7, 0.1], [0.2, 0.2, 0.2, 0.2], [1.0, 0.0, 0.0, 0.0]])
    ranks = rank_of_target(scores, np.array([2, 0, 0]))
    assert ranks.tolist() == [1, 3, 0]  # ties count against the target


def test_hand_computed_metrics() -> None:
    ranks = np.array([0, 1, 4, 10])
    assert hit_rate(ranks, 5) == 0.75
    assert math.isclose(mrr(ranks, 5), (1 + 1 / 2 + 1 / 5 + 0) / 4)
    assert math.isclose(ndcg(ranks, 5), (1 + 1 / math.log2(3) + 1 / math.log2(6) + 0) / 4)
    assert hit_rate(ranks, 11) == 1.0


def test_summarize_keys_and_empty() -> None:
    out = summarize(np.array([0, 2]), ks=(1, 3))
    assert out["hr@1"] == 0.5 and out["hr@3"] == 1.0 and out["count"] == 2
    assert summarize(np.zeros(0, dtype=np.int64), ks=(10,))["hr@10"] == 0.0
