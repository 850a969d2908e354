import pytest
import torch

from reckon.models.training.config import ModelConfig
from reckon.models.training.sasrec import SASRec


@pytest.fixture
def model() -> SASRec:
    torch.manual_seed(0)
    return SASRec(ModelConfig(num_items=30, max_len=8, hidden=16, heads=2, dropout=0.0, query_buckets=10, query_terms=3)).eval()


def test_shapes(model: SASRec) -> None:
    hist = torch.randint(1, 31, (4, 8))
    assert model(hist).shape == (4, 8, 16)
    assert model(hist, torch.randint(0, 11, (4, 8, 3))).shape == (4, 8, 16)
    assert model.score(hist, torch.randint(1, 31, (4, 5))).shape == (4, 5)
    assert model.score(hist, torch.randint(1, 31, (4, 5)), torch.randint(0, 11, (4, 3))).shape == (4, 5)
    assert model.logits_all(model.represent_last(hist)).shape == (4, 31)


def test_causal_future_items_do_not_change_earlier_positions(model: SASRec) -> None:
    hist = torch.randint(1, 31, (2, 8))
    changed = hist.clone()
    changed[:, 5:] = torch.randint(1, 31, (2, 3))
    with torch.no_grad():
        a, b = model(hist), model(changed)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_left_padding_is_ignored(model: SASRec) -> None:
    """The same history with more left padding scores the same (padding keys are masked)."""
    short = torch.tensor([[0, 0, 0, 0, 0, 3, 4, 5]])
    with torch.no_grad():
        full = model.score(short, torch.tensor([[1, 2, 7]]))
        # a shorter tensor is right-aligned to the same positions
        trimmed = model.score(short[:, 4:], torch.tensor([[1, 2, 7]]))
    assert torch.allclose(full, trimmed, atol=1e-5)


def test_score_matches_training_representation(model: SASRec) -> None:
    hist = torch.randint(1, 31, (3, 8))
    cands = torch.randint(1, 31, (3, 6))
    with torch.no_grad():
        rep = model(hist)[:, -1]  # (B, H)
        want = (model.item_emb(cands) * rep.unsqueeze(1)).sum(-1)
        assert torch.allclose(model.score(hist, cands), want, atol=1e-5)


def test_query_terms_change_scores_and_padding_terms_do_not(model: SASRec) -> None:
    hist = torch.randint(1, 31, (1, 8))
    cands = torch.arange(1, 11).unsqueeze(0)
    with torch.no_grad():
        base = model.score(hist, cands, torch.zeros(1, 3, dtype=torch.long))
        none = model.score(hist, cands)
        some = model.score(hist, cands, torch.tensor([[0, 4, 7]]))
    assert torch.allclose(base, none, atol=1e-6)
    assert not torch.allclose(base, some)


def test_normalized_scores_are_bounded() -> None:
    cfg = ModelConfig(num_items=20, max_len=5, hidden=8, normalize=True, temperature=0.1)
    m = SASRec(cfg).eval()
    with torch.no_grad():
        s = m.score(torch.randint(1, 21, (4, 5)), torch.randint(1, 21, (4, 7)))
    assert float(s.abs().max()) <= 1 / 0.1 + 1e-4


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        ModelConfig(num_items=10, hidden=10, heads=3)
    with pytest.raises(ValueError):
        ModelConfig(num_items=0)
    cfg = ModelConfig(num_items=10)
    assert ModelConfig.from_dict({**cfg.to_dict(), "unknown": 1}) == cfg


@pytest.fixture
def repeat_model() -> SASRec:
    torch.manual_seed(0)
    m = SASRec(ModelConfig(num_items=30, max_len=6, hidden=8, heads=2, normalize=True, repeat_bonus=True)).eval()
    with torch.no_grad():
        m.repeat_weight.copy_(torch.randn(6))
    return m


def test_repeat_bonus_scores_history_items_by_recency(repeat_model: SASRec) -> None:
    hist = torch.tensor([[0, 0, 3, 5, 3, 7]])
    cands = torch.tensor([[7, 5, 3, 9]])
    w, scale = repeat_model.repeat_weight.detach(), 1 / repeat_model.config.temperature
    want = torch.tensor([[w[0], w[2], w[1] + w[3], 0.0]]) * scale  # 3 occurs twice: both count; 9 never
    with torch.no_grad():
        assert torch.allclose(repeat_model.repeat_for(hist, cands), want, atol=1e-5)
        base = repeat_model.logits_for(repeat_model.represent_last(hist), cands)
        assert torch.allclose(repeat_model.score(hist, cands), base + want, atol=1e-5)
        # a history without its left padding gets the same bonus (recency counts from the latest)
        assert torch.allclose(repeat_model.repeat_for(hist[:, 2:], cands), want, atol=1e-5)


def test_training_and_serving_give_each_prefix_the_same_repeat_bonus(repeat_model: SASRec) -> None:
    """Training adds the bonus to its loss over all items for every position at once; serving adds it
    to the candidates of one history: the two must agree, or the model learns one thing and serves another."""
    from reckon.models.training.sasrec import latest_recency, prefix_recency

    inputs = torch.tensor([[0, 0, 3, 5, 3, 7], [1, 2, 2, 4, 9, 1]])
    items, recency = prefix_recency(inputs)
    everything = torch.arange(1, 31).unsqueeze(0)
    with torch.no_grad():
        for b in range(2):
            for t in range(6):
                if inputs[b, t] == 0:
                    continue
                trained = repeat_model.add_repeat_all(torch.zeros(1, 31), items[b, t:t + 1], recency[b, t:t + 1])
                history = torch.cat([torch.zeros(1, 5 - t, dtype=torch.long), inputs[b:b + 1, :t + 1]], dim=1)
                served = repeat_model.repeat_for(history, everything)
                evaluated = repeat_model.add_repeat_all(torch.zeros(1, 31), history, latest_recency(history))
                assert torch.allclose(trained[:, 1:], served, atol=1e-6)
                assert torch.allclose(evaluated[:, 1:], served, atol=1e-6)


def test_without_repeat_bonus_there_is_no_weight_and_no_bonus(model: SASRec) -> None:
    assert model.repeat_weight is None and "repeat_weight" not in model.state_dict()
    logits = torch.randn(2, 31)
    assert torch.equal(model.add_repeat_all(logits.clone(), torch.ones(2, 8, dtype=torch.long),
                                            torch.zeros(2, 8, dtype=torch.long)), logits)
    assert model.repeat_for(torch.ones(2, 8, dtype=torch.long), torch.ones(2, 3, dtype=torch.long)) is None
