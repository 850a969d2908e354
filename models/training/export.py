"""ONNX export of the serving path and its compressed variants.

* fp32: ``torch.onnx.export`` (TorchScript exporter, ``dynamo=False``) of
  ``SASRec.score``; dynamic batch, history (up to ``max_len``), candidate and query-term
  axes. Positions are right-aligned, so a history without its leading padding scores the
  same: the scorer trims it (compute follows the real history length). Checked against
  PyTorch before anything is written.
* The item embeddings are an input, ``item_table`` (N', H) float32, not a weight of the
  graph: the scorer feeds the version's table (``item_emb.npy``) and can append rows
  for items the version never saw (cold start, models/serving/coldstart.py). On the CPU
  provider a contiguous numpy input is read in place, so feeding it costs no copy.
* int8: onnxruntime dynamic quantization (MatMul weights and the position Gather);
  for the CPU provider only (under CUDA it falls back to slow CPU kernels).
* fp16: onnxruntime's float16 converter, inputs/outputs kept int64/float32; for CUDA.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from reckon.models.core.errors import ExportError
from reckon.models.serving.costing import time_scoring
from reckon.models.serving.runtime import session_for
from reckon.models.training.sasrec import SASRec

__all__ = ["convert_fp16", "export_fp32", "measure_throughput", "parity_check", "quantize_int8", "session_for",
           "serving_feeds", "torch_scores"]

OPSET = 17
log = logging.getLogger(__name__)


class _Serving(nn.Module):
    """The graph that gets exported: score(history, candidates, item_table[, query_terms])."""

    def __init__(self, model: SASRec) -> None:
        super().__init__()
        self.model = model

    def forward(self, history: Tensor, candidates: Tensor, item_table: Tensor,
                query_terms: Tensor | None = None) -> Tensor:
        return self.model.score(history, candidates, query_terms, item_table)


def input_names(model: SASRec) -> list[str]:
    return ["history", "candidates", "item_table"] + (["query_terms"] if model.config.query_buckets else [])


def item_table(model: SASRec) -> np.ndarray:
    """The trained item embeddings as the graph's ``item_table`` input: (N + 1, H) float32."""
    return np.ascontiguousarray(model.item_emb.weight.detach().cpu().numpy(), dtype=np.float32)


def serving_feeds(names: list[str], table: np.ndarray, history: np.ndarray, candidates: np.ndarray,
                  query_terms: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """A session's feeds by input name (a graph without ``query_terms`` gets none)."""
    feeds = {"history": history, "candidates": candidates, "item_table": table}
    if "query_terms" in names:
        feeds["query_terms"] = query_terms if query_terms is not None else np.zeros((len(history), 1), np.int64)
    return feeds


def torch_scores(model: SASRec, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """What the exported graph should answer for ``feeds``, from PyTorch."""
    q = feeds.get("query_terms")
    with torch.no_grad():
        return model.score(torch.from_numpy(feeds["history"]), torch.from_numpy(feeds["candidates"]),
                           None if q is None else torch.from_numpy(q),
                           torch.from_numpy(feeds["item_table"])).numpy()


def example_inputs(model: SASRec, batch: int = 2, candidates: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    cfg = model.config
    rng = np.random.default_rng(seed)
    hist = rng.integers(1, cfg.num_items + 1, size=(batch, cfg.max_len), dtype=np.int64)
    hist[:, : cfg.max_len // 2] = 0  # left padding, as served
    feeds = {"history": hist, "item_table": item_table(model),
             "candidates": rng.integers(1, cfg.num_items + 1, size=(batch, candidates), dtype=np.int64)}
    if cfg.query_buckets:
        q = rng.integers(0, cfg.query_buckets + 1, size=(batch, cfg.query_terms), dtype=np.int64)
        feeds["query_terms"] = q
    return feeds


def export_fp32(model: SASRec, path: Path) -> Path:
    model = model.cpu().eval()
    feeds = example_inputs(model)
    names = input_names(model)
    axes = {"history": {0: "batch", 1: "time"}, "candidates": {0: "batch", 1: "candidates"},
            "item_table": {0: "items"}, "scores": {0: "batch", 1: "candidates"}}
    if "query_terms" in names:
        axes["query_terms"] = {0: "batch", 1: "terms"}
    args = tuple(torch.from_numpy(feeds[n]) for n in names)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript exporter deprecation notice
            torch.onnx.export(
                _Serving(model), args, str(path), input_names=names, output_names=["scores"],
                dynamic_axes=axes, opset_version=OPSET, dynamo=False,
            )
    except Exception as exc:  # translate at the boundary
        raise ExportError(f"ONNX export to {path} failed: {exc}") from exc
    onnx.checker.check_model(str(path))
    return path


def quantize_int8(fp32_path: Path, path: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quant_log = logging.getLogger()  # the quantizer warns on the root logger about pre-processing
    level = quant_log.level
    quant_log.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(fp32_path), str(path), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gather"])
    except Exception as exc:
        raise ExportError(f"int8 quantization of {fp32_path} failed: {exc}") from exc
    finally:
        quant_log.setLevel(level)
    return path


def convert_fp16(fp32_path: Path, path: Path) -> Path:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        fp16 = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
        onnx.save(fp16, str(path))
    except Exception as exc:
        raise ExportError(f"fp16 conversion of {fp32_path} failed: {exc}") from exc
    return path


def parity_check(model: SASRec, path: Path, atol: float = 1e-4, batch: int = 16, candidates: int = 50) -> float:
    """Max |onnx - torch| on random inputs; raises ExportError above ``atol``."""
    model = model.cpu().eval()
    feeds = example_inputs(model, batch, candidates, seed=1)
    want = torch_scores(model, feeds)
    got = session_for(path).run(["scores"], feeds)[0]
    diff = float(np.max(np.abs(got - want)))
    scale = float(np.max(np.abs(want))) or 1.0
    if not diff <= atol * max(1.0, scale):
        raise ExportError(f"{path}: ONNX scores differ from PyTorch by {diff:.3g} (tolerance {atol:g} x {scale:.3g})")
    return diff


def measure_throughput(
    session: ort.InferenceSession, model_inputs: list[str], table: np.ndarray, max_len: int,
    batch: int = 256, candidates: int = 100, seconds: float = 1.0,
    query_buckets: int = 0, query_terms: int = 8,
) -> dict[str, float]:
    """Time one onnxruntime session on (batch x candidates) scoring calls (see reckon.models.serving.costing)."""

    def score(h: np.ndarray, c: np.ndarray, q: np.ndarray | None) -> np.ndarray:
        return session.run(["scores"], serving_feeds(model_inputs, table, h, c, q))[0]

    return time_scoring(score, len(table) - 1, max_len, batch, candidates, seconds, query_buckets, query_terms)
