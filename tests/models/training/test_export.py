from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from reckon.models.core.errors import ExportError
from reckon.models.training.config import ModelConfig
from reckon.models.training.export import (
    convert_fp16,
    example_inputs,
    export_fp32,
    input_names,
    parity_check,
    quantize_int8,
    session_for,
    torch_scores,
)
from reckon.models.training.sasrec import SASRec


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("onnx")
    fp32 = export_fp32(tiny_model, d / "model.fp32.onnx")
    return {"fp32": fp32, "int8": quantize_int8(fp32, d / "model.int8.onnx"),
            "fp16": convert_fp16(fp32, d / "model.fp16.onnx")}


def test_fp32_parity_and_dynamic_axes(tiny_model, exported) -> None:
    assert parity_check(tiny_model, exported["fp32"]) < 1e-4
    sess = session_for(exported["fp32"])
    for batch, cands in ((1, 3), (7, 40)):  # batch and candidate axes are dynamic
        feeds = example_inputs(tiny_model, batch, cands, seed=batch)
        got = sess.run(["scores"], feeds)[0]
        assert got.shape == (batch, cands) and got.dtype == np.float32
        np.testing.assert_allclose(got, torch_scores(tiny_model, feeds), atol=1e-4)


@pytest.mark.parametrize("variant, atol", [("int8", 0.5), ("fp16", 0.05)])
def test_compressed_variants_stay_close_and_keep_topk(tiny_model, exported, variant: str, atol: float) -> None:
    feeds = example_inputs(tiny_model, 16, 30, seed=3)
    want = torch_scores(tiny_model, feeds)
    got = session_for(exported[variant]).run(["scores"], feeds)[0]
    assert got.dtype == np.float32  # io types kept
    assert np.max(np.abs(got - want)) < atol * max(1.0, np.max(np.abs(want)))
    top_want = np.argsort(-want, axis=1)[:, :5]
    top_got = np.argsort(-got, axis=1)[:, :5]
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top_want, top_got)])
    assert overlap >= 0.8


def test_variant_files_are_smaller(tiny_model, exported) -> None:
    size = {k: p.stat().st_size for k, p in exported.items()}
    assert size["int8"] < size["fp32"] and size["fp16"] < size["fp32"]
    graph = onnx.load(str(exported["fp32"])).graph
    assert [i.name for i in graph.input] == input_names(tiny_model) == ["history", "candidates", "item_table",
                                                                        "query_terms"]
    assert not any(init.name == "model.item_emb.weight" for init in graph.initializer)   # an input, not a weight


def test_parity_failure_raises(tiny_model, exported, tmp_path: Path) -> None:
    other = type(tiny_model)(tiny_model.config)  # different random weights
    with pytest.raises(ExportError, match="differ from PyTorch"):
        parity_check(other, exported["fp32"])


def test_the_repeat_bonus_is_in_the_exported_graph(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SASRec(ModelConfig(num_items=40, max_len=8, hidden=16, heads=2, normalize=True, repeat_bonus=True)).eval()
    with torch.no_grad():
        model.repeat_weight.copy_(torch.linspace(0.5, -0.2, 8))
    path = export_fp32(model, tmp_path / "model.onnx")
    assert parity_check(model, path) < 1e-4
    feeds = example_inputs(model, 4, 6, seed=2)
    feeds["candidates"][:, :4] = feeds["history"][:, -4:]  # candidates the history holds get the bonus
    sess = session_for(path)
    got = sess.run(["scores"], feeds)[0]
    np.testing.assert_allclose(got, torch_scores(model, feeds), atol=1e-4)
    with torch.no_grad():
        model.repeat_weight.zero_()
    assert np.abs(got[:, :4] - torch_scores(model, feeds)[:, :4]).max() > 1.0  # the bonus is really there
    trimmed = dict(feeds, history=np.ascontiguousarray(feeds["history"][:, 4:]))  # the leading padding dropped
    np.testing.assert_allclose(sess.run(["scores"], trimmed)[0], got, atol=1e-5)
