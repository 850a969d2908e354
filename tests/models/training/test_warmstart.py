import numpy as np
import torch

from reckon.models.serving.coldstart import estimate_vectors
from reckon.models.training.config import TrainConfig
from reckon.models.training.timesplit import Example, time_split
from reckon.models.training.warmstart import evaluate_examples, fine_tune, grow


def test_grow_keeps_what_the_model_knew_and_starts_new_rows_from_co_occurrence(tiny_model, tiny_data) -> None:
    ids = tiny_data.item_ids
    a, b = ids[0], ids[1]
    model, grown = grow(tiny_model, ids, [[a, "brand-new", b], ["brand-new", a], ["lonely"]])
    assert grown == ids + ["brand-new", "lonely"] and model.config.num_items == len(ids) + 2
    old = tiny_model.item_emb.weight.detach()
    new = model.item_emb.weight.detach()
    assert torch.equal(new[:len(old)], old)                          # same indices, same rows
    table = old.numpy()
    want = estimate_vectors(table[[[1, 2]]], np.array([[2.0, 1.0]]))[0]   # a twice, b once
    np.testing.assert_allclose(new[len(old)].numpy(), want, atol=1e-6)
    assert 0 < float(new[len(old) + 1].norm()) < 1.0                 # no known neighbour: the init's row
    hist = torch.tensor([[0, 1, 2, 3]])
    cands = torch.tensor([[4, 5, 6]])
    with torch.no_grad():                                            # known items score as before
        assert torch.allclose(model.score(hist, cands), tiny_model.score(hist, cands), atol=1e-6)


def test_unknown_targets_are_misses_and_unknown_history_is_dropped(tiny_model, tiny_data) -> None:
    ids = tiny_data.item_ids
    known = [Example(tuple(ids[:3]), ids[3]), Example(tuple(ids[4:6]), ids[6])]
    alone = evaluate_examples(tiny_model, ids, known)
    mixed = evaluate_examples(tiny_model, ids, known + [Example(tuple(ids[:3]), "never-seen")] * 2)
    assert mixed["unknown_targets"] == 2 and alone["unknown_targets"] == 0
    assert mixed["hr@10"] == alone["hr@10"] / 2 and mixed["count"] == 4
    noisy = evaluate_examples(tiny_model, ids, [Example(("x",) + ex.history, ex.target) for ex in known])
    assert noisy["hr@10"] == alone["hr@10"] and noisy["mrr@10"] == alone["mrr@10"]


def test_fine_tune_starts_from_the_parent_and_learns_new_items(tiny_model, tiny_data) -> None:
    ids = tiny_data.item_ids
    rng = np.random.default_rng(3)
    # sessions that walk a known topic, then a new item that always follows "red-3"
    clicks = []
    for u in range(150):
        start = int(rng.integers(0, 8))
        walk = [f"red-{(start + k) % 12}" for k in range(4)] + ["red-3", "red-new"]
        clicks += [(f"u{u}", item, u * 100.0 + k) for k, item in enumerate(walk)]
    split = time_split(clicks, eval_fraction=0.2, valid_fraction=0.1)
    frozen = evaluate_examples(tiny_model, ids, split.eval)
    result, grown = fine_tune(tiny_model, ids, split, TrainConfig(epochs=4, lr=3e-3, batch_size=32, patience=4))
    retrained = evaluate_examples(result.model, grown, split.eval)
    assert "red-new" in grown and frozen["unknown_targets"] > 0 and retrained["unknown_targets"] == 0
    assert retrained["hr@10"] > frozen["hr@10"]
    # one step at a tiny learning rate: still the parent's weights, give or take
    result, _ = fine_tune(tiny_model, ids, split, TrainConfig(epochs=1, lr=1e-9, batch_size=4096))
    assert torch.allclose(result.model.blocks[0].attn.qkv.weight, tiny_model.blocks[0].attn.qkv.weight, atol=1e-6)
