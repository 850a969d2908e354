"""Default training settings per data format, each validated on development data only.

`reckon train --format F` starts from ``PRESETS[F]`` and an explicit flag replaces one value;
`reckon bench quality` uses the same settings for its two public datasets.

- ``sessions``: run **E4** of bench/MODEL.md (Diginetica, SR-GNN split): the configuration with
  the best *validation* MRR@20 (last 5 % of the training sessions) in the GPU sweep; it beat
  SR-GNN on the test set (P@20 52.51 / MRR@20 18.15, 53.83 / 18.52 retrained on all sessions as F3).
  It trains under bfloat16 autocast where the device has bf16 natively (``precision auto``): on
  Diginetica its validation MRR@20 after each of the first three epochs was float32's to
  within 0.0002, at a fraction of the step time (bench/MODEL.md, "Faster steps").
  It adds the learned repeat bonus (``repeat_bonus``): validation MRR@20 rose in every epoch of the
  30-minute run, 0.1865 -> 0.1947 at the best epoch (bench/MODEL.md, "Repeat bonus").
  It holds out the last 2 % of the training sessions to choose the epoch, not E4's 5 %: the
  held-out sessions are the most recent, and F1/F3 showed what training on them is worth.
  It validates and keeps a moving average of the weights over about the last epoch (or the last
  step's weights in an epoch where they validate higher)
  (``ema_epochs``), and trains the newest 10 % of the training sessions twice per epoch
  (``recent_share``): both chosen by validation MRR@20 on the held-out sessions, epoch for
  epoch against the same run without them (bench/MODEL.md, "Averaged weights, newest sessions twice").
  Once the epoch is chosen it continues from that epoch for one pass over the held-out and the
  newest 10 % of the sessions and keeps that (``refit``): chosen on a split inside the training
  sessions, whose newest 2 % it scored higher (bench/MODEL.md, "Refit on the newest sessions").
- ``sasrec``: run **G2** of bench/MODEL.md (Amazon Games, SASRec split): the best *validation*
  NDCG@10 (each user's second-to-last item) of the Games sweep (test HR@10 0.7701 / NDCG@10 0.5777).
- ``events`` (old name ``jsonl``): Reckon's own events. No public benchmark exists for them, so these are the defaults
  `reckon train` had before presets (SASRec-sized, dot-product scores), unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from reckon.models.training.config import ModelConfig, TrainConfig
from reckon.models.training.data import canonical_format

__all__ = ["PRESETS", "Preset", "configs", "preset_for"]


@dataclass(frozen=True)
class Preset:
    name: str  # the --format it applies to
    validated_on: str  # where the settings were chosen (by validation, never by test score)
    settings: dict[str, Any]  # ModelConfig and TrainConfig fields; the rest keep their dataclass defaults

    def describe(self) -> str:
        return f"{self.name} ({self.validated_on}): " + ", ".join(f"{k} {v}" for k, v in self.settings.items())


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("sessions", "run E4 of bench/MODEL.md, Diginetica validation; bf16 as float32 per epoch there; repeat bonus, "
           "weight average, newest sessions twice and the refit by validation; 2 % held out",
           {"hidden": 128, "max_len": 20, "blocks": 2, "heads": 2, "dropout": 0.2, "normalize": True,
            "temperature": 0.07, "epochs": 30, "batch_size": 256, "lr": 1e-3, "lr_decay": 0.8, "patience": 3,
            "valid_metric": "mrr@20", "valid_protocol": "full", "precision": "auto", "repeat_bonus": True,
            "valid_fraction": 0.02, "ema_epochs": 1.0, "recent_share": 0.1, "refit": True}),
    Preset("sasrec", "run G2 of bench/MODEL.md, Amazon Games validation",
           {"hidden": 64, "max_len": 50, "blocks": 2, "heads": 1, "dropout": 0.5, "normalize": True,
            "temperature": 0.1, "epochs": 200, "batch_size": 128, "lr": 1e-3, "lr_decay": 1.0, "patience": 10,
            "valid_metric": "ndcg@10", "valid_protocol": "sampled100"}),
    Preset("events", "no public benchmark: the defaults before presets",
           {"hidden": 64, "max_len": 50, "blocks": 2, "heads": 1, "dropout": 0.2, "normalize": False,
            "temperature": 0.07, "epochs": 20, "batch_size": 128, "lr": 1e-3, "lr_decay": 1.0, "patience": 3,
            "valid_metric": "ndcg@10", "valid_protocol": "full"}),
)}


def preset_for(fmt: str) -> Preset:
    """The preset of a data format; a ValueError naming the choices for any other."""
    return PRESETS[canonical_format(fmt)]


_MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)}
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def configs(preset: Preset, num_items: int, overrides: dict[str, Any] | None = None) -> tuple[ModelConfig, TrainConfig]:
    """The preset's settings with ``overrides`` (field -> value) applied on top, as the two configs."""
    values = {**preset.settings, **(overrides or {})}
    unknown = set(values) - _MODEL_FIELDS - _TRAIN_FIELDS
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(sorted(unknown))}")
    model = ModelConfig(num_items=num_items, **{k: v for k, v in values.items() if k in _MODEL_FIELDS})
    train = TrainConfig(**{k: v for k, v in values.items() if k in _TRAIN_FIELDS})
    return model, train
