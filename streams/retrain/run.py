"""One retrain: clicks -> time split -> warm-started candidate -> judged beside the current
version on the latest slice -> registered with its training cost -> promoted if better.

The candidate is always registered once trained (with why it was or was not promoted), so
a refused one can be inspected or promoted by hand. Its manifest's `retraining` section
holds the parent version, the window and split, the training cost (CPU seconds of this
process over training, judging and export, GPU seconds on CUDA, priced by the price sheet
in effect), both versions' quality on the latest slice and the decision.

Training needs PyTorch (the `train` extra): it is imported here, when a retrain runs.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from reckon.models.core.registry import Registry
from reckon.streams.core.errors import RetrainError
from reckon.streams.costs.pricing import PriceSheet, Quantities
from reckon.streams.retrain.events import Click
from reckon.streams.retrain.policy import Decision, RetrainConfig, decide

_MONEY = Decimal("0.000000000001")


def _training() -> Any:
    """The training modules, or a one-line error when PyTorch is not installed."""
    try:
        # The training package first: it asks torch for huge pages, read when torch starts.
        from reckon.models.training import config, publish, timesplit, warmstart

        import torch
    except ImportError as exc:
        raise RetrainError(f"retraining needs {exc.name}, from the 'train' extra: pip install 'reckon[train]'") from None
    return torch, config, publish, timesplit, warmstart


def retrain(clicks: Sequence[Click], registry: Registry, config: RetrainConfig, sheet: PriceSheet,
            source: dict[str, Any]) -> dict[str, Any]:
    """Retrain from `clicks` (any order); `source` says where they came from (kept in the manifest).
    Returns what happened, JSON-able: the candidate version (or why none), both versions'
    quality on the latest slice, the training cost, whether it was promoted and why."""
    torch, training_config, publish, timesplit, warmstart = _training()
    current = registry.current()
    if current is None:
        raise RetrainError(f"no promoted version in {registry.path} to start from: train one first")
    if config.threads:
        torch.set_num_threads(config.threads)
    started_wall, started_cpu = time.monotonic(), time.process_time()
    try:
        split = timesplit.time_split(clicks, config.eval_fraction, config.valid_fraction)
    except ValueError as exc:
        raise RetrainError(f"{len(clicks)} clicks: {exc}") from None
    if len(split.eval) < config.min_examples:
        raise RetrainError(f"{len(split.eval)} examples in the latest slice of {len(clicks)} clicks, fewer than "
                           f"the {config.min_examples} needed to judge a candidate: nothing trained")
    parent = publish.load_checkpoint(current.path / "model.pt")
    trained, item_ids = warmstart.fine_tune(parent, current.item_ids, split, training_config.TrainConfig(
        epochs=config.epochs, lr=config.lr, patience=2, time_budget=config.seconds, device=config.device,
        valid_metric=config.metric, batch_size=128))
    candidate_quality = warmstart.evaluate_examples(trained.model, item_ids, split.eval)
    current_quality = warmstart.evaluate_examples(parent, current.item_ids, split.eval)
    decision = decide(candidate_quality, current_quality, config, len(split.eval))
    index = {item: i + 1 for i, item in enumerate(item_ids)}
    eval_set, _ = warmstart.eval_set(split.eval, index)
    mv = publish.publish(
        trained.model, registry, item_ids, {"format": "clicks", **source, **split.description},
        training={"warm_start_from": current.version, "epochs_run": trained.epochs_run,
                  "best_epoch": trained.best_epoch, "stopped": trained.stopped,
                  "wall_seconds": round(trained.wall_seconds, 2), "new_items": len(item_ids) - len(current.item_ids)},
        metrics={"protocol": "full", "valid": trained.valid, "latest_slice": candidate_quality},
        eval_set=eval_set, quality_limit=2000, measure_seconds=config.measure_seconds)
    cost = _cost(sheet, time.monotonic() - started_wall, time.process_time() - started_cpu, config.device)
    if decision.promote and registry.current_id() != current.version:
        decision = Decision(False, f"the promoted version changed to {registry.current_id()} while "
                                   f"{current.version} was being retrained")
    section = {
        "parent": current.version, "source": source, "split": split.description, "training_cost": cost,
        "offline_quality": {"slice": "latest", "protocol": "full", "metric": config.metric,
                            "examples": len(split.eval), "candidate": candidate_quality, "current": current_quality},
        "promotion": {"promoted": decision.promote, "reason": decision.reason, "margin": config.margin,
                      "decided_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
    }
    registry.update_manifest(mv.version, "retraining", section)
    if decision.promote:
        registry.promote(mv.version)
    return {"version": mv.version, "parent": current.version, "promoted": decision.promote,
            "reason": decision.reason, "metric": config.metric, "examples": len(split.eval),
            "candidate_quality": candidate_quality[config.metric], "current_quality": current_quality[config.metric],
            "new_items": len(item_ids) - len(current.item_ids), "training_cost": cost, "split": split.description}


def _cost(sheet: PriceSheet, wall: float, cpu: float, device: str) -> dict[str, Any]:
    """What the retrain used and what it cost, priced like every cost row (compute only: people
    and ops are the worker's hours, already spread as shared cost)."""
    from reckon.models.serving.runtime import cuda_device_name

    device_name = f"cuda:{cuda_device_name() or 'gpu'}" if device.startswith("cuda") else "cpu"
    # Rounded first, then priced: the recorded quantities reproduce the recorded cost.
    wall, cpu = round(wall, 6), round(cpu, 6)
    gpu_seconds = wall if device.startswith("cuda") else 0.0   # the GPU is held for the whole run
    now = dt.datetime.now(dt.timezone.utc)
    priced = sheet.price_quantities(Quantities(wall_seconds=wall, cpu_seconds=cpu, device_seconds=gpu_seconds,
                                               device=device_name), now)   # no staffed seconds: no people or ops
    return {"wall_seconds": wall, "cpu_seconds": cpu, "device_seconds": gpu_seconds,
            "device": device_name, "price_sheet_version": sheet.version,
            "cost_usd": f"{priced.total.quantize(_MONEY):f}"}
