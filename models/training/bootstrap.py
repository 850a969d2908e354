"""First-run model: make sure a registry has a promoted version, training one if not."""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reckon.models.core.errors import ModelError
from reckon.models.core.registry import ModelVersion, Registry
from reckon.models.serving.costing import DEVICE_HOUR_USD

__all__ = ["ensure_model"]

log = logging.getLogger(__name__)


def ensure_model(
    registry_dir: Path,
    events: Iterable[dict[str, Any]],
    seconds: float = 20.0,
    query_buckets: int = 1024,
    device_hour_usd: float = DEVICE_HOUR_USD["cpu"],
    progress: bool = False,
) -> ModelVersion:
    """Return the promoted version; if there is none, train a small model on ``events``
    for about ``seconds`` (training gets ~70%, export and measurement the rest),
    register and promote it.

    An exclusive lock on ``<registry>/.bootstrap.lock`` makes concurrent callers wait
    for the first one and return its version instead of training twice.
    """
    registry = Registry(Path(registry_dir))
    current = registry.current()
    if current is not None:
        return current
    started = time.monotonic()
    with (registry.path / ".bootstrap.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            current = registry.current()
            if current is not None:
                return current
            # Imported here so that workers with a promoted model never import torch.
            from reckon.models.training.config import ModelConfig, TrainConfig
            from reckon.models.training.cost import training_cost
            from reckon.models.training.data import load_events
            from reckon.models.training.publish import publish
            from reckon.models.training.train import train

            data = load_events(events, query_buckets=query_buckets, strict=False)  # a live stream may hold bad events
            if not data.train:
                raise ModelError("ensure_model: no user has two or more clicks to learn from")
            with_queries = query_buckets if data.train_terms is not None and any(t.any() for t in data.train_terms) else 0
            model_config = ModelConfig(num_items=data.num_items, max_len=20, hidden=48, blocks=2, heads=1,
                                       dropout=0.2, query_buckets=with_queries)
            budget = max(1.0, seconds * 0.7 - (time.monotonic() - started))
            cpu_started = time.process_time()
            result = train(data, model_config, TrainConfig(epochs=200, batch_size=64, lr=2e-3, patience=5,
                                                           time_budget=budget), progress=progress)
            mv = publish(
                result.model, registry, data.item_ids, data.description,
                training={"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                          "stopped": result.stopped, "wall_seconds": result.wall_seconds, "bootstrap": True,
                          "cost": training_cost(result.wall_seconds, time.process_time() - cpu_started, "cpu",
                                                device_hour_usd)},
                metrics={"valid": result.valid}, eval_set=data.test, quality_limit=500,
                device_hour_usd=device_hour_usd, measure_seconds=0.25, promote=True,
            )
            log.info("bootstrapped model %s in %.1fs", mv.version, time.monotonic() - started)
            return mv
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
