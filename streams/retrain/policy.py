"""What a retrain is asked to do, and the rule that decides a promotion."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from reckon.streams.core.errors import ReckonError
from reckon.streams.core.settings import Settings

# What a caller may override per retrain (`reckon retrain` options, `POST /retrain` query
# parameters), each bounded as its RECKON_RETRAIN_* setting is.
OVERRIDES = ("window_hours", "margin", "seconds", "min_examples", "eval_fraction")


@dataclass(frozen=True)
class RetrainConfig:
    window_hours: float = 24.0       # clicks read, ending now
    max_clicks: int = 2_000_000      # the latest ones, if the window holds more
    eval_fraction: float = 0.2       # the latest slice: both versions are judged on it
    valid_fraction: float = 0.1      # the slice before it: the candidate's epochs are chosen on it
    metric: str = "hr@10"            # full ranking over each version's own items
    margin: float = 0.01             # the candidate must beat the current version by this much
    min_examples: int = 200          # examples in the latest slice needed to decide at all
    seconds: float = 120.0           # training wall-time budget
    epochs: int = 10
    lr: float = 1e-3
    threads: int = 1                 # torch threads; 0 = torch's default
    device: str = "cpu"              # torch device
    measure_seconds: float = 0.25    # timing per exported variant

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> "RetrainConfig":
        """RECKON_RETRAIN_* settings, with the given (non-None) overrides."""
        s = settings
        config = cls(window_hours=s.retrain_window_hours, max_clicks=s.retrain_max_clicks,
                     eval_fraction=s.retrain_eval_fraction, valid_fraction=s.retrain_valid_fraction,
                     metric=s.retrain_metric, margin=s.retrain_margin, min_examples=s.retrain_min_examples,
                     seconds=s.retrain_seconds, epochs=s.retrain_epochs, lr=s.retrain_lr,
                     threads=s.retrain_threads, device=s.retrain_device)
        return replace(config, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(candidate: dict[str, float], current: dict[str, float], config: RetrainConfig,
           examples: int) -> Decision:
    """Promote only a candidate better than the current version by the margin, on enough examples."""
    metric = config.metric
    new, old = candidate[metric], current[metric]
    if examples < config.min_examples:
        return Decision(False, f"{examples} examples in the latest slice, fewer than the {config.min_examples} "
                               "needed to decide")
    if new - old >= config.margin:
        return Decision(True, f"{metric} {new:.4f} beats the current {old:.4f} by {new - old:+.4f} "
                              f"(margin {config.margin:g}) on {examples} examples of the latest slice")
    return Decision(False, f"{metric} {new:.4f} vs the current {old:.4f} ({new - old:+.4f}) is not better by "
                           f"the margin {config.margin:g} on {examples} examples of the latest slice")


def check_overrides(given: Mapping[str, Any]) -> dict[str, Any]:
    """A retrain's overrides (None: not given) as numbers within their settings' bounds;
    raises ReckonError naming the first one that is unknown or out of bounds."""
    unknown = sorted(set(given) - set(OVERRIDES))
    if unknown:
        raise ReckonError(f"unknown retrain options {unknown}; known: {list(OVERRIDES)}")
    checked: dict[str, Any] = {}
    for name, value in given.items():
        if value is None:
            continue
        field = Settings.model_fields[f"retrain_{name}"]
        try:
            number = TypeAdapter(Annotated[(field.annotation, *field.metadata)]).validate_python(value)
        except ValidationError as exc:
            raise ReckonError(f"retrain option {name}: {exc.errors()[0]['msg']}, got {str(value)[:40]!r}") from None
        if not math.isfinite(number):
            raise ReckonError(f"retrain option {name} must be a finite number, got {str(value)[:40]!r}")
        checked[name] = number
    return checked
