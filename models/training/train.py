"""Training loop: shuffled mini-batches of sequences, a loss at every position,
validation each epoch, early stopping, an optional wall-time budget.

Every position of a training sequence predicts the next item, so one causal pass over
a session trains on all its prefixes (SR-GNN's augmentation) at the cost of one.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from reckon.models.core.errors import first_line
from reckon.models.training.config import ModelConfig, TrainConfig
from reckon.models.training.data import SequenceData
from reckon.models.training.evaluate import evaluate_model
from reckon.models.training.memory import freed_memory_kept
from reckon.models.training.sasrec import SASRec, prefix_recency

__all__ = ["TrainResult", "make_chunks", "resolve_precision", "seed_everything", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: SASRec  # best weights by the validation metric, in eval mode, on CPU
    epochs_run: int
    best_epoch: int
    stopped: str  # "epochs" | "early_stopping" | "time_budget"
    wall_seconds: float
    valid: dict[str, float]  # validation metrics of the chosen epoch (the returned weights', but for a refit)
    history: list[dict[str, Any]] = field(default_factory=list)
    precision: str = "fp32"  # what the run computed in ("auto" resolved)
    # With TrainConfig.refit: what the pass over the held-out and newest sequences did
    # (from_epoch, sequences, steps, loss, seconds, complete); None without one.
    refit: dict[str, Any] | None = None


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 matrix products natively (AVX-512 BF16 or AMX on
    a CPU, Ampere and later on CUDA)."""
    try:
        if device.type == "cuda":
            return torch.cuda.is_bf16_supported()
        return device.type == "cpu" and torch.backends.mkldnn.is_available() and \
            bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without the probe
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 where ``device`` has native bfloat16, else fp32; the others as they are."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_chunks(
    seqs: list[np.ndarray], terms: list[np.ndarray] | None, max_len: int
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Cut sequences longer than max_len + 1 into windows so every target is trained on
    exactly once, each with up to max_len items of context."""
    out: list[tuple[np.ndarray, np.ndarray | None]] = []
    for i, s in enumerate(seqs):
        for end in range(len(s), 1, -max_len):
            start = max(0, end - max_len - 1)
            out.append((s[start:end], None if terms is None else terms[i][start:end]))
    return out


def _collate(chunks: list[tuple[np.ndarray, np.ndarray | None]], q: int | None) -> tuple[torch.Tensor, ...]:
    """-> inputs (B, T), targets (B, T), terms (B, T, Q) or None; left-padded to the
    batch's longest chunk (T <= max_len), the model right-aligns positions."""
    t = max(len(c) for c, _ in chunks) - 1
    inputs = np.zeros((len(chunks), t), dtype=np.int64)
    targets = np.zeros((len(chunks), t), dtype=np.int64)
    terms = np.zeros((len(chunks), t, q), dtype=np.int64) if q else None
    for i, (c, ct) in enumerate(chunks):
        n = len(c) - 1
        inputs[i, t - n:] = c[:-1]
        targets[i, t - n:] = c[1:]
        if terms is not None and ct is not None:
            terms[i, t - n:] = ct[1:]  # the query context before each target
    tensors = (torch.from_numpy(inputs), torch.from_numpy(targets))
    return tensors + ((torch.from_numpy(terms),) if terms is not None else (None,))


def _save_resume_state(path: Path, state: dict[str, Any]) -> None:
    # Written to a temporary file and renamed: a run killed mid-write keeps the previous epoch.
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_resume_state(path: Path, model_config: ModelConfig, train_config: TrainConfig) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:    # tensors and plain values only: a pickle that names code is refused, never run
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:    # the unpickler's errors: many types, messages of many lines
        raise ValueError(f"--resume {path}: not a training state saved by --resume ({first_line(exc)})") from None
    mine = {"model_config": model_config.to_dict(), "train_config": train_config.to_dict()}
    # A setting added since the state was written reads as its default.
    stored = {"model_config": ModelConfig.from_dict(state["model_config"]).to_dict(),
              "train_config": TrainConfig.from_dict(state["train_config"]).to_dict()}
    for key, want in mine.items():
        # Where it runs, how long, and how many epochs in all may change between attempts.
        free = ("time_budget", "device", "epochs")
        have = {k: v for k, v in stored[key].items() if k not in free}
        want = {k: v for k, v in want.items() if k not in free}
        if have != want:
            diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            raise ValueError(f"{path} was written by a run with a different {key} (differs in {', '.join(diff)}); "
                             "delete it or train with the same settings to resume")
    return state


def _loss(model: SASRec, inputs: torch.Tensor, targets: torch.Tensor, terms: torch.Tensor | None, kind: str) -> torch.Tensor:
    rep = model(inputs, terms)  # (B, T, H)
    mask = targets > 0
    rep, tgt = rep[mask], targets[mask]  # (M, H), (M,)
    if kind == "ce":
        logits = model.logits_all(rep)  # (M, N + 1)
        if model.repeat_weight is not None:
            items, recency = prefix_recency(inputs)
            model.add_repeat_all(logits, items[mask], recency[mask])
        logits[:, 0] = float("-inf")
        return F.cross_entropy(logits, tgt)
    neg = torch.randint(1, model.config.num_items + 1, tgt.shape, device=tgt.device)
    pos_logit = model.logits_for(rep, tgt.unsqueeze(-1)).squeeze(-1)
    neg_logit = model.logits_for(rep, neg.unsqueeze(-1)).squeeze(-1)
    return F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit)) + \
        F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit))


def _train_pass(model: SASRec, opt: torch.optim.Optimizer, ema: AveragedModel | None,
                chunks: list[tuple[np.ndarray, np.ndarray | None]], order: np.ndarray, q: int | None,
                tc: TrainConfig, device: torch.device, precision: str, deadline: float | None,
                desc: str, progress: bool) -> tuple[float, int, bool]:
    """One pass over ``chunks`` in ``order``, the average updated after every step
    -> (summed loss, steps, whether ``deadline`` cut it short)."""
    model.train()
    total, steps = 0.0, 0
    bar = tqdm(range(0, len(order), tc.batch_size), desc=desc, disable=not progress, leave=False)
    try:
        for lo in bar:
            inputs, targets, terms = _collate([chunks[i] for i in order[lo : lo + tc.batch_size]], q)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = _loss(model, inputs.to(device), targets.to(device),
                             None if terms is None else terms.to(device), tc.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            total += loss.item()
            steps += 1
            if steps % 50 == 0:
                bar.set_postfix(loss=f"{total / steps:.4f}")
            if deadline is not None and time.monotonic() > deadline:
                return total, steps, True
        return total, steps, False
    finally:
        bar.close()


@freed_memory_kept()   # a decorator: entered anew on every call
def train(
    data: SequenceData,
    model_config: ModelConfig,
    train_config: TrainConfig,
    progress: bool = True,
    valid_limit: int | None = 20_000,
    resume_path: Path | None = None,
    init_state: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a SASRec on ``data.train``; select the epoch by ``train_config.valid_metric``
    on (at most ``valid_limit`` examples of) ``data.valid``.

    With ``init_state`` (a state dict for ``model_config``) training starts from those
    weights instead of random ones: a warm start (models/training/warmstart.py).

    With ``resume_path``, the whole run state (weights, optimizer, schedule, random
    generators, best epoch so far) is written there after every epoch, and a run started
    with the same settings continues from it: an interrupted multi-hour CPU run resumes
    and ends with the weights an uninterrupted run would have had."""
    tc = train_config
    seed_everything(tc.seed)
    resumed = _load_resume_state(resume_path, model_config, tc) if resume_path else None
    # Time already trained counts against the budget and the reported wall time.
    started = time.monotonic() - (resumed["elapsed"] if resumed else 0.0)
    deadline = None if tc.time_budget is None else started + tc.time_budget
    device = torch.device(tc.device)
    precision = resolve_precision(tc.precision, device)
    model = SASRec(model_config)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=tc.lr_decay)
    q = model_config.query_terms if model_config.query_buckets and data.train_terms is not None else None
    chunks = make_chunks(data.train, data.train_terms if q else None, model_config.max_len)
    if not chunks:
        raise ValueError("no training sequence with at least two items")
    if tc.recent_share:  # the newest sequences once more per epoch
        n = math.ceil(len(data.train) * tc.recent_share)
        chunks += make_chunks(data.train[-n:], data.train_terms[-n:] if q else None, model_config.max_len)
    # With ema_epochs the average is what is validated, kept and returned; the raw weights train on.
    ema = None
    if tc.ema_epochs:
        horizon = tc.ema_epochs * math.ceil(len(chunks) / tc.batch_size)    # steps
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(max(0.0, 1.0 - 1.0 / horizon)))
    # The refit's pass: the held-out sequences, and the newest recent_share of all (them included).
    refit_chunks: list[tuple[np.ndarray, np.ndarray | None]] = []
    refit_sequences = 0
    if tc.refit and data.held_out and not q:
        every = data.train + data.held_out
        newest = every[-math.ceil(len(every) * tc.recent_share):] if tc.recent_share else []
        refit_chunks = make_chunks(data.held_out + newest, None, model_config.max_len)
        refit_sequences = len(data.held_out) + len(newest)
    loop_deadline = deadline
    valid = data.valid.subset(valid_limit, tc.seed) if valid_limit else data.valid
    rng = np.random.default_rng(tc.seed)
    best_score, best_epoch, best_state, best_metrics = -1.0, 0, None, {}
    refit_state: dict[str, Any] | None = None  # the raw weights and optimizer at the best epoch
    history: list[dict[str, Any]] = []
    stopped, epoch, bad, first = "epochs", 0, 0, 1
    if resumed:
        model.load_state_dict(resumed["model"])
        opt.load_state_dict(resumed["opt"])
        sched.load_state_dict(resumed["sched"])
        if ema is not None:
            ema.load_state_dict(resumed["ema"])
        rng.bit_generator.state = resumed["rng"]
        torch.set_rng_state(resumed["torch_rng"])
        best_score, best_epoch, best_state, best_metrics = (
            resumed["best_score"], resumed["best_epoch"], resumed["best_state"], resumed["best_metrics"])
        history, bad, epoch, stopped = resumed["history"], resumed["bad"], resumed["epoch"], resumed["stopped"]
        refit_state = resumed.get("refit_state")
        # Early stopping is final; a run stopped by its time budget goes on if the new budget allows.
        first = tc.epochs + 1 if stopped == "early_stopping" else epoch + 1
        stopped = "epochs" if first <= tc.epochs else stopped
        log.info("resumed from %s after epoch %d", resume_path, epoch)
    for epoch in range(first, tc.epochs + 1):
        if best_state is not None and loop_deadline is not None and time.monotonic() > loop_deadline:
            stopped = "time_budget"   # what is left is the refit's
            break
        pass_started = time.monotonic()
        total, steps, out_of_time = _train_pass(model, opt, ema, chunks, rng.permutation(len(chunks)), q, tc, device,
                                                precision, loop_deadline, f"epoch {epoch}/{tc.epochs}", progress)
        sched.step()
        pass_seconds = time.monotonic() - pass_started
        chosen = model if ema is None else ema.module
        metrics = evaluate_model(chosen, valid, tc.valid_protocol) if len(valid) else {}
        score = metrics.get(tc.valid_metric, 0.0)
        row = {"epoch": epoch, "loss": total / max(steps, 1), "steps": steps,
               "seconds": round(time.monotonic() - started, 2), **{f"valid_{k}": v for k, v in metrics.items()}}
        raw = None
        if ema is not None and len(valid):  # what the average adds, in the same run
            raw_metrics = evaluate_model(model, valid, tc.valid_protocol)
            raw = row[f"raw_valid_{tc.valid_metric}"] = raw_metrics[tc.valid_metric]
            if raw > score:      # the average lags early on (a short budget): the last step's weights are kept
                chosen, score, metrics = model, raw, raw_metrics
                row["kept"] = "last step's weights"
        history.append(row)
        if loop_deadline is not None and refit_chunks:  # leave the refit's pass its time, and a validation's
            loop_deadline = deadline - pass_seconds * len(refit_chunks) / len(chunks) - \
                (time.monotonic() - pass_started - pass_seconds)
        log.info("epoch %d: loss %.4f %s %.4f", epoch, row["loss"], tc.valid_metric, score)
        if progress:
            tqdm.write(f"epoch {epoch}: loss {row['loss']:.4f} valid {tc.valid_metric} {score:.4f}"
                       + ("" if raw is None else f" (kept: {row.get('kept', 'averaged weights')}; "
                                                 f"averaged {row[f'valid_{tc.valid_metric}']:.4f}, last step's {raw:.4f})")
                       + f" ({row['seconds']:.0f}s)", file=sys.stderr)  # stdout is for a command's result
        if score > best_score or not len(valid):
            best_score, best_epoch, best_metrics, bad = score, epoch, metrics, 0
            best_state = copy.deepcopy(chosen.state_dict())
            if refit_chunks:
                refit_state = copy.deepcopy({"model": model.state_dict(), "opt": opt.state_dict()})
        else:
            bad += 1
        if out_of_time:
            stopped = "time_budget"
        elif bad >= tc.patience:
            stopped = "early_stopping"
        if resume_path:
            _save_resume_state(resume_path, {
                "model_config": model_config.to_dict(), "train_config": tc.to_dict(), "epoch": epoch,
                "stopped": stopped, "elapsed": time.monotonic() - started, "model": model.state_dict(),
                "opt": opt.state_dict(), "sched": sched.state_dict(),
                "ema": None if ema is None else ema.state_dict(), "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(), "best_score": best_score, "best_epoch": best_epoch,
                "best_state": best_state, "best_metrics": best_metrics, "history": history, "bad": bad,
                "refit_state": refit_state})
        if stopped != "epochs":
            break
    assert best_state is not None
    refit = None
    if refit_state is not None:
        # The chosen epoch's weights and optimizer, one pass over the newest sessions, the
        # held-out ones included, and its last weights are the result. Validation cannot judge
        # them (it trained on them): the chosen epoch's scores are reported.
        model.load_state_dict(refit_state["model"])
        opt.load_state_dict(refit_state["opt"])
        pass_started = time.monotonic()
        total, steps, out_of_time = _train_pass(model, opt, None, refit_chunks, rng.permutation(len(refit_chunks)),
                                                q, tc, device, precision, deadline, "refit", progress)
        best_state = copy.deepcopy(model.state_dict())
        refit = {"from_epoch": best_epoch, "sequences": refit_sequences, "steps": steps,
                 "loss": total / max(steps, 1), "seconds": round(time.monotonic() - pass_started, 2),
                 "complete": not out_of_time}
        if progress:
            tqdm.write(f"refit: from epoch {best_epoch}, one pass over the held-out and newest sessions: "
                       f"loss {refit['loss']:.4f}, {steps} steps ({refit['seconds']:.0f}s"
                       + ("" if not out_of_time else ", cut short by the time budget") + ")", file=sys.stderr)
    model.load_state_dict(best_state)
    model = model.cpu().eval()
    return TrainResult(model, epoch, best_epoch, stopped, time.monotonic() - started, best_metrics, history,
                       precision, refit)
