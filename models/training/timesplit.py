"""A time split of a click stream: train on the past, select on the recent, judge on the latest.

Every click is placed by its time among all clicks (by count, so a quiet night does not
shrink a slice): the oldest share trains, the next ``valid_fraction`` selects the epoch,
the latest ``eval_fraction`` is the evaluation slice two versions are compared on. An
example of a later slice is one click (the target) with everything its user clicked
before it (the history, of any slice): what serving would have seen. The first click of
a user predicts nothing and is not an example.

Items are kept as names: versions with different vocabularies are judged on the same
examples (models/training/warmstart.py maps them, an unknown target counting as a miss).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Example", "TimeSplit", "time_split"]


@dataclass(frozen=True)
class Example:
    history: tuple[str, ...]    # the user's items before the target, oldest first
    target: str


@dataclass
class TimeSplit:
    train: list[list[str]]       # per user, the items clicked before the validation slice
    valid: list[Example]
    eval: list[Example]
    valid_from: float            # unix seconds: the first validation click
    eval_from: float             # ... and the first click of the evaluation slice
    description: dict[str, Any] = field(default_factory=dict)


def time_split(clicks: Iterable[tuple[str, str, float]], eval_fraction: float = 0.2,
               valid_fraction: float = 0.1) -> TimeSplit:
    """clicks: (user, item, ts) in any order, ts in unix seconds. Ties in time keep their order."""
    if not (0 < eval_fraction < 1 and 0 < valid_fraction < 1 and eval_fraction + valid_fraction < 1):
        raise ValueError("eval_fraction and valid_fraction must be in (0, 1) and leave room to train")
    rows = sorted(enumerate(clicks), key=lambda row: (row[1][2], row[0]))
    if len(rows) < 3:
        raise ValueError(f"{len(rows)} clicks: too few to split")
    n = len(rows)
    valid_at = int(n * (1 - eval_fraction - valid_fraction))
    eval_at = int(n * (1 - eval_fraction))
    valid_from, eval_from = rows[valid_at][1][2], rows[eval_at][1][2]
    seen: dict[str, list[str]] = {}
    train: dict[str, list[str]] = {}
    valid: list[Example] = []
    evaluation: list[Example] = []
    for position, (_, (user, item, _ts)) in enumerate(rows):
        history = seen.setdefault(user, [])
        if position < valid_at:
            train.setdefault(user, []).append(item)
        elif history:
            (valid if position < eval_at else evaluation).append(Example(tuple(history), item))
        history.append(item)
    sequences = [items for items in train.values() if len(items) >= 2]
    return TimeSplit(sequences, valid, evaluation, valid_from, eval_from, {
        "clicks": n, "users": len(seen), "train_clicks": valid_at, "train_sequences": len(sequences),
        "valid_examples": len(valid), "eval_examples": len(evaluation),
        "valid_from": valid_from, "eval_from": eval_from})
