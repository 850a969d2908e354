from pathlib import Path

from reckon.models.core.registry import Registry
from reckon.models.serving.scorer import Scorer
from reckon.models.training.bootstrap import ensure_model


def test_ensure_model_trains_once_then_reuses(tmp_path: Path, events, make_events) -> None:
    mv = ensure_model(tmp_path / "reg", events, seconds=6.0)
    reg = Registry(tmp_path / "reg")
    assert reg.current_id() == mv.version
    assert set(mv.variants) == {"fp32", "int8", "fp16"}
    m = mv.manifest
    assert m["training"]["bootstrap"] is True and m["data"]["format"] == "events"
    assert m["config"]["query_buckets"] > 0  # the generated stream has searches
    for variant in ("fp32", "int8"):
        v = m["variants"][variant]
        assert v["device_seconds_per_1k_scores"] > 0 and v["bytes"] > 0
        assert abs(v["cost_per_1k_scores_usd"] - v["device_seconds_per_1k_scores"] / 3600 * 0.0624) < 1e-12
    mv.verify()
    s = Scorer.load(mv)
    assert s.item_index("red-0") > 0
    again = ensure_model(tmp_path / "reg", make_events(users=5, seed=1), seconds=1.0)
    assert again.version == mv.version and len(reg.list()) == 1
