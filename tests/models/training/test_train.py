from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from reckon.models.training.config import ModelConfig, TrainConfig
from reckon.models.training.data import EvalSet, SequenceData
from reckon.models.training.evaluate import evaluate_model, evaluate_scorer, pad_left, sample_negatives
from reckon.models.training.train import make_chunks, train


def cyclic_data(items: int = 12, users: int = 40) -> SequenceData:
    """Every user walks 1 -> 2 -> ... -> items -> 1: the next item is fully predictable."""
    rng = np.random.default_rng(0)
    seqs = [(np.arange(rng.integers(items), rng.integers(items) + 10) % items + 1).astype(np.int64) for _ in range(users)]
    hist = [s[:-1] for s in seqs]
    valid = EvalSet(hist, np.array([s[-1] for s in seqs]), seen=[np.unique(s) for s in seqs])
    return SequenceData([str(i) for i in range(1, items + 1)], [s[:-1] for s in seqs], valid, valid)


def test_chunks_cover_every_target_once() -> None:
    seq = np.arange(1, 12, dtype=np.int64)  # 10 targets
    chunks = make_chunks([seq], None, max_len=4)
    targets = sorted(int(t) for c, _ in chunks for t in c[1:])
    assert targets == list(range(2, 12))
    assert all(len(c) <= 5 for c, _ in chunks)


def test_training_learns_and_is_deterministic() -> None:
    data = cyclic_data()
    cfg = ModelConfig(num_items=12, max_len=8, hidden=16, dropout=0.0)
    tc = TrainConfig(epochs=8, batch_size=8, lr=5e-3, patience=20)
    a = train(data, cfg, tc, progress=False)
    b = train(data, cfg, tc, progress=False)
    assert a.valid["mrr@10"] > 0.8, a.valid
    assert a.history[-1]["loss"] < a.history[0]["loss"]
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


def test_time_budget_and_early_stopping() -> None:
    data = cyclic_data()
    cfg = ModelConfig(num_items=12, max_len=8, hidden=16)
    r = train(data, cfg, TrainConfig(epochs=1000, batch_size=4, time_budget=0.3), progress=False)
    assert r.stopped in ("time_budget", "early_stopping") and r.epochs_run < 1000
    r = train(data, cfg, TrainConfig(epochs=1000, batch_size=8, lr=0.0, patience=2), progress=False)
    assert r.stopped == "early_stopping" and r.epochs_run == 3


def test_bce_loss_trains() -> None:
    data = cyclic_data()
    r = train(data, ModelConfig(num_items=12, max_len=8, hidden=16, dropout=0.0),
              TrainConfig(epochs=20, batch_size=8, lr=5e-3, loss="bce", patience=30, valid_protocol="full"),
              progress=False)
    assert r.valid["mrr@10"] > 0.5, r.valid


def test_protocols_agree_between_torch_and_numpy_scorer() -> None:
    data = cyclic_data()
    model = train(data, ModelConfig(num_items=12, max_len=8, hidden=16), TrainConfig(epochs=2, batch_size=8),
                  progress=False).model

    def score(h: np.ndarray, c: np.ndarray, q: np.ndarray | None) -> np.ndarray:
        with torch.no_grad():
            return model.score(torch.from_numpy(h), torch.from_numpy(c)).numpy()

    a = evaluate_model(model, data.valid, "full")
    b = evaluate_scorer(score, data.valid, 12, 8, "full")
    assert abs(a["ndcg@10"] - b["ndcg@10"]) < 1e-6


def test_sampled_negatives_exclude_seen_and_target() -> None:
    ev = EvalSet([np.array([1, 2])], np.array([3]), seen=[np.array([1, 2, 3, 4])])
    neg = sample_negatives(ev, num_items=200, n=100, seed=1)
    assert neg.shape == (1, 100) and len(set(neg[0].tolist())) == 100
    assert not set(neg[0].tolist()) & {0, 1, 2, 3, 4}
    assert (sample_negatives(ev, 200, 100, seed=1) == neg).all()


def test_pad_left_truncates_to_most_recent() -> None:
    out = pad_left([np.array([1, 2, 3, 4]), np.array([5])], 3)
    assert out.tolist() == [[2, 3, 4], [0, 0, 5]]


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path) -> None:
    data = cyclic_data()
    cfg = ModelConfig(num_items=12, max_len=8, hidden=16, dropout=0.3)  # dropout: the torch RNG is restored too
    tc = TrainConfig(epochs=4, batch_size=8, lr=5e-3, lr_decay=0.8, patience=20)
    whole = train(data, cfg, tc, progress=False)
    ckpt = tmp_path / "run.resume"
    first = train(data, cfg, replace(tc, epochs=2), progress=False, resume_path=ckpt)
    assert first.epochs_run == 2 and ckpt.exists()
    rest = train(data, cfg, tc, progress=False, resume_path=ckpt)
    assert rest.epochs_run == 4 and [h["epoch"] for h in rest.history] == [1, 2, 3, 4]
    assert [h["loss"] for h in rest.history] == [h["loss"] for h in whole.history]
    for pa, pb in zip(whole.model.parameters(), rest.model.parameters()):
        assert torch.equal(pa, pb)
    again = train(data, cfg, tc, progress=False, resume_path=ckpt)  # finished: nothing more to train
    assert again.epochs_run == 4 and len(again.history) == 4


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_resume_state_that_would_run_code_is_refused_unrun(tmp_path) -> None:
    """--resume read with the full unpickler: a crafted file at that path ran its code."""
    marker, ckpt = tmp_path / "ran", tmp_path / "run.resume"
    torch.save({"model_config": _RunsCode(marker)}, ckpt)
    with pytest.raises(ValueError, match="not a training state saved by --resume"):
        train(cyclic_data(), ModelConfig(num_items=12, max_len=8, hidden=16), TrainConfig(epochs=1, batch_size=8),
              progress=False, resume_path=ckpt)
    assert not marker.exists()


def test_resuming_with_other_settings_is_refused(tmp_path) -> None:
    data = cyclic_data()
    ckpt = tmp_path / "run.resume"
    train(data, ModelConfig(num_items=12, max_len=8, hidden=16), TrainConfig(epochs=1, batch_size=8),
          progress=False, resume_path=ckpt)
    with pytest.raises(ValueError, match=r"different model_config \(differs in hidden\)"):
        train(data, ModelConfig(num_items=12, max_len=8, hidden=32), TrainConfig(epochs=2, batch_size=8),
              progress=False, resume_path=ckpt)


def test_a_state_written_before_a_setting_existed_resumes_with_its_default(tmp_path) -> None:
    data = cyclic_data()
    cfg, ckpt = ModelConfig(num_items=12, max_len=8, hidden=16), tmp_path / "run.resume"
    train(data, cfg, TrainConfig(epochs=1, batch_size=8), progress=False, resume_path=ckpt)
    state = torch.load(ckpt, weights_only=False)
    del state["train_config"]["precision"]           # as written before precision was a setting
    torch.save(state, ckpt)
    assert train(data, cfg, TrainConfig(epochs=2, batch_size=8), progress=False, resume_path=ckpt).epochs_run == 2
    with pytest.raises(ValueError, match=r"different train_config \(differs in precision\)"):
        train(data, cfg, TrainConfig(epochs=3, batch_size=8, precision="bf16"), progress=False, resume_path=ckpt)


def test_bf16_precision_trains_and_returns_float32_weights() -> None:
    data = cyclic_data()
    cfg = ModelConfig(num_items=12, max_len=8, hidden=16, dropout=0.0)
    tc = TrainConfig(epochs=8, batch_size=8, lr=5e-3, patience=20, precision="bf16")
    half = train(data, cfg, tc, progress=False)
    full = train(data, cfg, replace(tc, precision="fp32"), progress=False)
    assert half.valid["mrr@10"] > 0.8, half.valid
    assert all(p.dtype == torch.float32 for p in half.model.parameters())
    # Autocast really ran: the same seed and data give different weights than float32.
    assert any(not torch.equal(a, b) for a, b in zip(half.model.parameters(), full.model.parameters()))


def test_a_held_out_share_outside_0_to_1_is_refused() -> None:
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="valid_fraction must be in"):
            TrainConfig(valid_fraction=bad)


def test_an_ema_horizon_outside_0_to_100_epochs_is_refused() -> None:
    for bad in (-0.5, 101.0, float("nan")):
        with pytest.raises(ValueError, match="ema_epochs must be in"):
            TrainConfig(ema_epochs=bad)


def test_a_moving_average_is_what_is_validated_and_returned() -> None:
    data = cyclic_data()
    cfg = ModelConfig(num_items=12, max_len=8, hidden=16, dropout=0.2)
    tc = TrainConfig(epochs=3, batch_size=8, lr=5e-3, patience=20, valid_metric="mrr@10")
    raw = train(data, cfg, tc, progress=False)
    avg = train(data, cfg, replace(tc, ema_epochs=0.5), progress=False)
    # The average rides along: the raw weights train exactly as without it, epoch for epoch.
    assert [h["raw_valid_mrr@10"] for h in avg.history] == [h["valid_mrr@10"] for h in raw.history]
    assert [h["loss"] for h in avg.history] == [h["loss"] for h in raw.history]
    # What is validated is the average; each epoch keeps whichever of it and the last step's
    # weights validates higher (a short budget ends before the average catches up).
    assert [h["valid_mrr@10"] for h in avg.history] != [h["raw_valid_mrr@10"] for h in avg.history]
    assert avg.valid == evaluate_model(avg.model, data.valid, "full")
    best = max(avg.history, key=lambda h: max(h["valid_mrr@10"], h["raw_valid_mrr@10"]))
    assert avg.valid["mrr@10"] == max(best["valid_mrr@10"], best["raw_valid_mrr@10"])
    assert ("kept" in best) == (best["raw_valid_mrr@10"] > best["valid_mrr@10"])


def test_an_interrupted_run_resumes_its_moving_average(tmp_path) -> None:
    data = cyclic_data()
    cfg = ModelConfig(num_items=12, max_len=8, hidden=16, dropout=0.3)
    tc = TrainConfig(epochs=3, batch_size=8, lr=5e-3, patience=20, ema_epochs=0.5)
    whole = train(data, cfg, tc, progress=False)
    ckpt = tmp_path / "run.resume"
    train(data, cfg, replace(tc, epochs=1), progress=False, resume_path=ckpt)
    rest = train(data, cfg, tc, progress=False, resume_path=ckpt)
    assert [h["valid_ndcg@10"] for h in rest.history] == [h["valid_ndcg@10"] for h in whole.history]
    for pa, pb in zip(whole.model.parameters(), rest.model.parameters()):
        assert torch.equal(pa, pb)


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision must be fp32, bf16 or auto"):
        TrainConfig(precision="fp16")


def test_auto_precision_is_bf16_only_where_the_device_has_it(monkeypatch) -> None:
    from reckon.models.training import train as training

    cpu = torch.device("cpu")
    for native, want in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(training, "native_bf16", lambda device, native=native: native)
        assert training.resolve_precision("auto", cpu) == want
        assert training.resolve_precision("fp32", cpu) == "fp32" and training.resolve_precision("bf16", cpu) == "bf16"
        result = train(cyclic_data(), ModelConfig(num_items=12, max_len=8, hidden=16),
                       TrainConfig(epochs=1, batch_size=8, precision="auto"), progress=False)
        assert result.precision == want


def test_training_asks_torch_for_huge_pages_unless_the_user_set_it() -> None:
    import os
    import subprocess
    import sys

    probe = "import reckon.models.training, os; print(os.environ['THP_MEM_ALLOC_ENABLE'])"
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    assert subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "1"
    assert subprocess.run([sys.executable, "-c", probe], env={**env, "THP_MEM_ALLOC_ENABLE": "0"},
                          capture_output=True, text=True, check=True).stdout.strip() == "0"


def alternating_data(items: int = 300, users: int = 200) -> SequenceData:
    """Every session alternates between two random items (a b a b ...): each next click
    returns to the item seen two clicks before, which the embeddings alone cannot know."""
    rng = np.random.default_rng(1)
    seqs = [np.resize(rng.choice(items, 2, replace=False) + 1, rng.integers(4, 9)).astype(np.int64)
            for _ in range(users)]
    valid = EvalSet([s[:-1] for s in seqs[-50:]], np.array([s[-1] for s in seqs[-50:]]))
    return SequenceData([str(i) for i in range(1, items + 1)], seqs[:-50], valid, valid)


def test_the_repeat_bonus_learns_which_recency_returns() -> None:
    data = alternating_data()
    tc = TrainConfig(epochs=6, batch_size=16, lr=5e-3, patience=10, valid_metric="mrr@10")
    cfg = ModelConfig(num_items=300, max_len=8, hidden=16, dropout=0.0, normalize=True, repeat_bonus=True)
    with_bonus = train(data, cfg, tc, progress=False)
    without = train(data, replace(cfg, repeat_bonus=False), tc, progress=False)
    weights = with_bonus.model.repeat_weight.detach()
    assert int(weights.argmax()) == 1 and weights[1] > 0, weights  # the item before the latest
    assert with_bonus.valid["mrr@10"] > without.valid["mrr@10"] + 0.2, (with_bonus.valid, without.valid)


def test_the_newest_share_is_trained_twice() -> None:
    """Sessions drift: the older 300 step forward (i -> i+1), the newest 240 backward, and so
    does validation. One item of context cannot tell the two apart, so the model ranks by
    which was trained more: forward once (300 > 240), backward when the newest count twice."""
    def pairs(n: int, step: int) -> list[np.ndarray]:    # every item starts n / 12 of them
        return [(np.array([s, s + step]) % 12 + 1).astype(np.int64) for s in np.arange(n) % 12]
    check = pairs(60, -1)
    valid = EvalSet([s[:-1] for s in check], np.array([s[-1] for s in check]))
    data = SequenceData([str(i) for i in range(1, 13)], pairs(300, 1) + pairs(240, -1), valid, valid)
    cfg = ModelConfig(num_items=12, max_len=4, hidden=16, dropout=0.0)
    tc = TrainConfig(epochs=6, batch_size=60, lr=5e-3, patience=20, valid_metric="mrr@10")
    once = train(data, cfg, tc, progress=False)
    twice = train(data, cfg, replace(tc, recent_share=240 / 540), progress=False)
    assert [h["steps"] for h in twice.history] == [13] * 6          # 540 sessions + the newest 240, / 60
    assert once.valid["mrr@10"] < 0.6 < 0.85 < twice.valid["mrr@10"], (once.valid, twice.valid)
    with pytest.raises(ValueError, match="recent_share must be in"):
        TrainConfig(recent_share=1.5)


def test_refit_trains_one_more_epoch_on_the_held_out_sessions(tmp_path) -> None:
    """Items drift: the held-out (newest) sessions step through items 7-12, which training never
    shows, and so does the next period. The refit's pass from the chosen epoch's state learns
    them; what validation chose, and reports, is the same run's with or without it."""
    def walks(n: int, first: int) -> list[np.ndarray]:
        return [(np.arange(s, s + 4) % 6 + first).astype(np.int64) for s in np.arange(n) % 6]
    held = walks(120, 7)
    valid = EvalSet([s[:i] for s in held for i in range(1, 4)], np.array([s[i] for s in held for i in range(1, 4)]))
    later = walks(60, 7)
    nxt = EvalSet([s[:-1] for s in later], np.array([s[-1] for s in later]))
    data = SequenceData([str(i) for i in range(1, 13)], walks(300, 1), valid, nxt, held_out=held)
    cfg = ModelConfig(num_items=12, max_len=4, hidden=16, dropout=0.0)
    tc = TrainConfig(epochs=4, batch_size=30, lr=5e-3, patience=20, valid_metric="mrr@10", ema_epochs=1.0,
                     recent_share=0.5)
    plain = train(data, cfg, tc, progress=False)
    refit = train(data, cfg, replace(tc, refit=True), progress=False)
    assert plain.refit is None
    assert refit.valid == plain.valid and refit.best_epoch == plain.best_epoch   # the loop is the same run
    # The 120 held out, and the newest half of all 420 (the 120 again, and 90 of training): / 30
    assert refit.refit == {**refit.refit, "from_epoch": plain.best_epoch, "sequences": 330, "steps": 11,
                           "complete": True}
    before, after = evaluate_model(plain.model, nxt, "full"), evaluate_model(refit.model, nxt, "full")
    assert before["mrr@10"] < 0.25 < 0.35 < after["mrr@10"], (before, after)

    # Interrupted after epoch 2 and resumed: the chosen epoch's state comes back from the file.
    path = tmp_path / "run.resume"
    train(data, cfg, replace(tc, refit=True, epochs=2), progress=False, resume_path=path)
    resumed = train(data, cfg, replace(tc, refit=True), progress=False, resume_path=path)
    assert resumed.refit == {**refit.refit, "seconds": resumed.refit["seconds"]}
    for a, b in zip(resumed.model.parameters(), refit.model.parameters()):
        assert torch.equal(a, b)

    # Nothing held out (or nothing to refit on): no refit, the chosen epoch as it was.
    assert train(replace(data, held_out=[]), cfg, replace(tc, refit=True), progress=False).refit is None
