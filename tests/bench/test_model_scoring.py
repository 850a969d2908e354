"""`reckon bench scoring`'s text: money as `reckon costs` prints it (three significant digits),
per 1k scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from reckon.bench import model_scoring
from reckon.models.core.registry import Registry


class _Scorer:
    def __init__(self, mv, device: str, variant: str, threads: int | None = None) -> None:
        self.version, self.device, self.variant, self.provider = mv.version, device, variant, "CPUExecutionProvider"
        self.num_items, self.max_len = 10, 5

    def score(self, *args: object) -> None:
        raise AssertionError("time_scoring is replaced: nothing is scored")


def test_text_prints_cost_per_1k_scores_at_three_significant_digits(tmp_path: Path, capsys, monkeypatch) -> None:
    reg = Registry(tmp_path / "reg")
    staging = reg.staging_dir()
    (staging / "model.fp32.onnx").write_bytes(b"not timed here")
    reg.add(staging, {"version": "v1"})
    reg.promote("v1")
    monkeypatch.setattr(model_scoring.Scorer, "load", staticmethod(_Scorer))
    monkeypatch.setattr(model_scoring.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    timing = {"seconds_per_call": 0.005, "p50_ms": 5.0, "p99_ms": 6.0, "scores_per_second": 51_200.0,
              "device_seconds_per_1k_scores": 0.0209, "batch": 256, "candidates": 100, "calls": 3}
    monkeypatch.setattr(model_scoring, "time_scoring", lambda *args, **kwargs: timing)

    model_scoring.main(["--registry", str(tmp_path / "reg"), "--rounds", "1", "--seconds", "0.01"])
    out = capsys.readouterr().out
    # 0.0209 s / 3600 x $0.0624 = $0.000000362267 per 1k scores (was "$0.0000004")
    assert out.strip() == ("v1 cpu fp32: 51,200 scores/s, p50 5.00 ms, p99 6.00 ms per call of 256x100, "
                           "0.02090 device s and $0.000000362 per 1k scores (fastest of 1 rounds)")
    assert model_scoring.cost_per_1k(0.0209, 0.0624) == pytest.approx(3.62267e-07, rel=1e-5)
