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
