"""Trained model -> registered version: ONNX variants, checks, measured quality and cost.

Each variant's manifest entry records its file size, its measured scoring speed on
this machine (batch 256 x 100 candidates), device seconds and dollars per 1,000
scores, and its quality on a held-out sample next to the fp32 export's, so a worker
(or a person) can pick a variant by cost and quality.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reckon.models.core.errors import ModelError, first_line
from reckon.models.core.registry import ModelVersion, Registry, sha256_file
from reckon.models.serving.costing import DEVICE_HOUR_USD, cost_per_1k
from reckon.models.serving.runtime import cuda_device_name
from reckon.models.serving.scorer import check_version
from reckon.models.training.data import EvalSet
from reckon.models.training.evaluate import Protocol, evaluate_model, evaluate_scorer
from reckon.models.training.export import (
    convert_fp16,
    export_fp32,
    input_names,
    item_table,
    measure_throughput,
    parity_check,
    quantize_int8,
    serving_feeds,
    session_for,
)
from reckon.models.training.sasrec import SASRec

__all__ = ["CPU_HOUR_USD", "load_checkpoint", "measure_variants", "publish", "save_checkpoint"]

CPU_HOUR_USD = DEVICE_HOUR_USD["cpu"]
log = logging.getLogger(__name__)


def save_checkpoint(model: SASRec, path: Path) -> None:
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict()}, path)


def load_checkpoint(path: Path) -> SASRec:
    """The model ``save_checkpoint`` wrote; a one-line ModelError for a file that is not one."""
    from reckon.models.training.config import ModelConfig

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint " + ("is not a file" if path.exists() else "not found"))

    def refuse(why: str) -> ModelError:
        return ModelError(f"{path} is not a Reckon checkpoint: {why}")

    if not zipfile.is_zipfile(path):
        raise refuse("not a PyTorch file (a model.pt as `reckon train` registers)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:    # the unpickler's errors: many types, messages of many lines
        raise refuse(f"PyTorch cannot read it ({first_line(exc)})") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("config"), dict) or \
            not isinstance(blob.get("state_dict"), dict):
        raise refuse("it holds no model config and weights")
    try:
        model = SASRec(ModelConfig.from_dict(blob["config"]))
        model.load_state_dict(blob["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise refuse(f"its config and weights do not make a model ({first_line(exc)})") from None
    return model.eval()


def measure_variants(
    mv_dir: Path, model: SASRec, variants: list[str], eval_set: EvalSet | None, protocol: Protocol,
    device_hour_usd: float, seconds: float, providers: list[Any] | None = None, device: str = "cpu",
) -> dict[str, dict[str, Any]]:
    """Size, throughput, cost and quality of each ``model.<variant>.onnx`` in ``mv_dir``."""
    cfg = model.config
    names = input_names(model)
    table = item_table(model)
    out: dict[str, dict[str, Any]] = {}
    for variant in variants:
        path = mv_dir / f"model.{variant}.onnx"
        session = session_for(path, providers)
        speed = measure_throughput(session, names, table, cfg.max_len, seconds=seconds,
                                   query_buckets=cfg.query_buckets, query_terms=cfg.query_terms)
        entry: dict[str, Any] = {
            "bytes": path.stat().st_size,
            "device": device,
            "provider": session.get_providers()[0],
            "device_hour_usd": device_hour_usd,
            **{k: speed[k] for k in ("scores_per_second", "device_seconds_per_1k_scores", "batch", "candidates")},
            "cost_per_1k_scores_usd": cost_per_1k(speed["device_seconds_per_1k_scores"], device_hour_usd),
        }
        if eval_set is not None and len(eval_set):

            def score(h: np.ndarray, c: np.ndarray, q: np.ndarray | None, s: Any = session) -> np.ndarray:
                return s.run(["scores"], serving_feeds(names, table, h, c, q))[0]

            entry["quality"] = evaluate_scorer(score, eval_set, cfg.num_items, cfg.max_len, protocol)
        out[variant] = entry
    if "fp32" in out and "quality" in out["fp32"]:
        base = out["fp32"]["quality"]
        for entry in out.values():
            entry["quality_delta_vs_fp32"] = {k: entry["quality"][k] - base[k] for k in base if k != "count"}
    return out


def publish(
    model: SASRec,
    registry: Registry,
    item_ids: list[str],
    data_description: dict[str, Any],
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    eval_set: EvalSet | None = None,
    protocol: Protocol = "full",
    quality_limit: int = 2000,
    device_hour_usd: float = CPU_HOUR_USD,
    variants: tuple[str, ...] = ("fp32", "int8", "fp16"),
    measure_seconds: float = 1.0,
    promote: bool = False,
) -> ModelVersion:
    """Export, check, measure and register ``model``; optionally promote it."""
    model = model.cpu().eval()
    if len(item_ids) != model.config.num_items:
        raise ValueError(f"{len(item_ids)} item ids for a model of {model.config.num_items} items")
    staging = registry.staging_dir()
    try:
        fp32 = export_fp32(model, staging / "model.fp32.onnx")
        parity = parity_check(model, fp32)
        if "int8" in variants:
            quantize_int8(fp32, staging / "model.int8.onnx")
        if "fp16" in variants:
            convert_fp16(fp32, staging / "model.fp16.onnx")
        (staging / "item_ids.json").write_text(json.dumps(item_ids), encoding="utf-8")
        np.save(staging / "item_emb.npy", item_table(model))
        save_checkpoint(model, staging / "model.pt")
        sample = eval_set.subset(quality_limit) if eval_set is not None else None
        built = [v for v in variants if (staging / f"model.{v}.onnx").exists()]
        measured = measure_variants(staging, model, built, sample, protocol, device_hour_usd, measure_seconds)
        if sample is not None and len(sample):
            measured_torch = evaluate_model(model, sample, protocol)
        else:
            measured_torch = None
        now = dt.datetime.now(dt.timezone.utc)
        manifest = {
            "version": f"{now:%Y%m%d-%H%M%S}-{sha256_file(fp32)[:8]}",
            "created": now.isoformat(timespec="seconds"),
            "data": data_description,
            "config": model.config.to_dict(),
            "training": training or {},
            "metrics": metrics or {},
            "export": {"opset": 17, "parity_max_abs_diff_fp32": parity, "quality_protocol": protocol,
                       "quality_examples": 0 if sample is None else len(sample), "quality_torch": measured_torch},
            "variants": measured,
            "cost": {
                "score_unit": "one history scored against 100 candidates",
                "measured_on": {"device": "cpu", "gpu_present": cuda_device_name() is not None},
                "device_hour_usd": device_hour_usd,
                **{v: {"device_seconds_per_1k_scores": m["device_seconds_per_1k_scores"],
                       "cost_per_1k_scores_usd": m["cost_per_1k_scores_usd"]} for v, m in measured.items()},
            },
        }
        mv = registry.add(staging, manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if promote:
        registry.promote(mv.version, check=check_version)
    return mv
