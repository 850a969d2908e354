"""Frozen model hyperparameters, stored verbatim in each version's manifest."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = ["ModelConfig", "Precision", "TrainConfig"]

Precision = Literal["fp32", "bf16", "auto"]


@dataclass(frozen=True)
class ModelConfig:
    num_items: int  # item vocabulary size; internal ids 1..num_items, 0 = padding
    max_len: int = 50  # history positions seen by the model (serving pads/truncates to this)
    hidden: int = 64  # embedding and model width
    blocks: int = 2  # transformer blocks
    heads: int = 1  # attention heads; hidden must be divisible by heads
    dropout: float = 0.2
    query_buckets: int = 0  # hashed query-term buckets; 0 = no query conditioning
    query_terms: int = 8  # query terms kept per request (the Q axis)
    # Cosine scoring (L2-normalised sequence and item vectors, scaled by 1/temperature).
    # It helps a lot on short sessions (NISER, CORE); False = plain dot product as in SASRec.
    normalize: bool = False
    temperature: float = 0.07
    # A learned score for candidates already in the history, by how recently they were seen
    # (one weight per recency): a fifth of Diginetica's next clicks return to an item of the
    # session, which a single sequence vector ranks poorly (RepeatNet, SR-GNN's last-item term).
    repeat_bonus: bool = False
    seed: int = 42

    def __post_init__(self) -> None:
        if self.num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {self.num_items}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 128  # sequences per step
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_decay: float = 1.0  # learning rate multiplied by this after every epoch (1.0 = constant)
    loss: Literal["ce", "bce"] = "ce"  # ce: softmax over all items; bce: one random negative (SASRec)
    patience: int = 3  # epochs without validation improvement before stopping
    time_budget: float | None = None  # seconds of training wall time; None = no limit
    valid_metric: str = "ndcg@10"
    valid_protocol: Literal["full", "sampled100"] = "full"
    device: str = "cpu"  # torch device for training
    # bf16: the forward pass and loss under bfloat16 autocast (weights, optimizer and
    # evaluation stay float32); fp32: float32 throughout; auto: bf16 where the training
    # device computes it natively (emulated bf16 is slower than float32), else fp32.
    precision: Precision = "fp32"
    # Session data: the last (most recent) share of the training sessions held out to choose
    # the epoch; 0 = none (train on all, keep the last epoch). Other formats split per user.
    valid_fraction: float = 0.05
    # Validate, keep and export a moving average of the weights over about the last this many
    # epochs (exponential, decay 1 - 1/(ema_epochs x steps per epoch)) instead of the last
    # step's weights; 0 = off. In epochs, not a decay per step, so it means the same on a
    # small dataset as on a large one.
    ema_epochs: float = 0.0
    # The last share of the training sequences in the data's order (session files are in time
    # order: the newest) is trained twice per epoch: sessions drift, and what is served next
    # follows the newest ones. 0 = off.
    recent_share: float = 0.0
    # Once validation has chosen the epoch, continue from that epoch's weights and optimizer
    # for one pass over the held-out sequences and the newest recent_share of all sequences
    # (session data: the held-out sessions are the newest), and return its last weights.
    # Validation cannot score them (they trained on it): the chosen epoch's scores are reported.
    refit: bool = False
    seed: int = 42

    def __post_init__(self) -> None:
        if self.precision not in get_args(Precision):
            raise ValueError(f"precision must be fp32, bf16 or auto, got {self.precision!r}")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in [0, 1), got {self.valid_fraction}")
        if not (0.0 <= self.ema_epochs <= 100.0):   # NaN fails too
            raise ValueError(f"ema_epochs must be in [0, 100], got {self.ema_epochs}")
        if not 0.0 <= self.recent_share <= 1.0:
            raise ValueError(f"recent_share must be in [0, 1], got {self.recent_share}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
