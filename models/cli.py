"""``reckon train | eval | export | model list | model promote``.

The main CLI (``reckon.streams.cli.main``) calls ``register(app)``; nothing here parses arguments
at import time, and heavy imports (torch, onnxruntime) happen inside the commands.
"""

from __future__ import annotations

import json
import math
import os
import time
import zipfile
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from reckon.models.core.money import usd, usd_strings
from reckon.models.serving.costing import DEVICE_HOUR_USD
from reckon.models.training.cost import training_cost

if TYPE_CHECKING:
    from reckon.models.training.data import SequenceData

__all__ = ["check_train_device", "register"]



def default_registry() -> Path:
    """Where a worker with the same settings looks for its model: `<data dir>/models`, the
    data dir read as the worker's settings read it (RECKON_DATA_DIR, from the environment or
    ./.env; default .reckon). RECKON_MODEL_REGISTRY, the option's own variable, comes first."""
    from dotenv import dotenv_values

    dotenv = {k.upper(): v for k, v in dotenv_values(".env").items()} if Path(".env").is_file() else {}
    named = dotenv.get("RECKON_MODEL_REGISTRY")
    if named:
        return Path(named)
    return Path(os.environ.get("RECKON_DATA_DIR") or dotenv.get("RECKON_DATA_DIR") or ".reckon") / "models"

console = Console()
# Errors go to stderr, so stdout holds only what a command prints (one JSON line with --json).
_err = Console(stderr=True, soft_wrap=True)    # notes and errors: one line each


def _number(low: float, high: float | None = None, *, low_open: bool = False,
            high_open: bool = False) -> Callable[[Optional[float]], Optional[float]]:
    """A typer callback refusing a float option outside [low, high] (an open end with
    low_open / high_open) or not finite: typer's own min/max let nan through."""
    if high is None:
        what = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        what = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def check(value: Optional[float]) -> Optional[float]:
        if value is None:
            return value
        ok = math.isfinite(value) and (value > low if low_open else value >= low) and \
            (high is None or (value < high if high_open else value <= high))
        if not ok:
            raise typer.BadParameter(f"{value} is not {what}")
        return value

    return check


_POSITIVE = _number(0.0, low_open=True)


class Format(str, Enum):
    events = "events"
    sessions = "sessions"
    sasrec = "sasrec"
    jsonl = "jsonl"          # the old name of events


class ProtocolOpt(str, Enum):
    full = "full"
    sampled100 = "sampled100"


class Loss(str, Enum):
    ce = "ce"
    bce = "bce"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    auto = "auto"


class EvalVariant(str, Enum):
    torch = "torch"
    fp32 = "fp32"
    int8 = "int8"
    fp16 = "fp16"


# Same directory as the worker's settings (RECKON_MODEL_REGISTRY, default <data dir>/models).
RegistryOpt = Annotated[Optional[Path], typer.Option("--registry", envvar="RECKON_MODEL_REGISTRY",
                                                     show_default="$RECKON_DATA_DIR/models, else .reckon/models",
                                                     help="model registry directory")]
FormatOpt = Annotated[Format, typer.Option("--format", help="events (or jsonl): Reckon events; sessions: SR-GNN; sasrec: 'user item'")]
HourOpt = Annotated[Optional[float], typer.Option("--device-hour-usd", callback=_number(0.0),
                                                  help="device price per hour [default: 0.0624 cpu, 2.50 cuda: the default price sheet's]")]


def _load(*args: Any, **kwargs: Any) -> SequenceData:
    """`load_dataset`, saying on stderr which header lines it skipped."""
    from reckon.models.training.data import load_dataset

    dataset = load_dataset(*args, **kwargs)
    for path, line in dataset.description.get("headers_skipped", {}).items():
        _err.print(f"note: skipped the first line of {escape(path)}, a header ({escape(repr(line))})", highlight=False)
    return dataset


def _default_protocol(fmt: Format, num_items: int, *evalsets: Any) -> str:
    """SASRec's 100 sampled negatives for sasrec data, full ranking otherwise; and full ranking
    where the catalog leaves some example fewer than 100 items to sample (said on stderr)."""
    from reckon.models.training.evaluate import negatives_fit

    if fmt is not Format.sasrec:
        return "full"
    if all(negatives_fit(data, num_items) for data in evalsets):
        return "sampled100"
    _err.print(f"note: {num_items:,} items leave some example fewer than 100 to sample as negatives: ranked "
               "against every item (full) instead", highlight=False, soft_wrap=True)
    return "full"


def _fail(message: str) -> None:
    _err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    table = Table(title=title)
    for key in metrics:
        table.add_column(key)
    table.add_row(*(f"{v:.4f}" if k != "count" else f"{int(v)}" for k, v in metrics.items()))
    console.print(table)


_FROM_PRESET = "(default: the --format preset's)"


def check_train_device(device: str) -> None:
    """A ValueError in one line unless torch can train on ``device`` here (cpu, cuda[:N], mps)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"--device {device!r} is not a torch device: use cpu or cuda (cuda:N)") from None
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise ValueError(f"--device {device}: CUDA is not available in this torch build "
                             f"(torch {torch.__version__}); use --device cpu")
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: torch has CUDA but no GPU is visible; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) visible "
                             f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
        return
    if dev.type == "mps" and torch.backends.mps.is_available():
        return
    raise ValueError(f"--device {device}: training runs on cpu or cuda (cuda:N), not {dev.type}")


def _no_training_data(data: Path, dataset: Any) -> str | None:
    """Why ``dataset`` (loaded from ``data``) gives nothing to train on, or None."""
    if dataset.num_items == 0:
        return f"{data}: no usable events: it holds no clicks (an empty file, or only searches)"
    if not dataset.train:
        return f"{data}: no usable events: no user or session has two or more clicks to learn from"
    return None


def train_cmd(
    data: Annotated[Path, typer.Argument(metavar="DATA", help="events .jsonl, sessions file/dir, or 'user item' file")],
    fmt: Annotated[str, typer.Option("--format", help="events (or jsonl): Reckon events; sessions: SR-GNN; sasrec: 'user item'. "
                                     "Picks the preset (below) that flags not given take")] = Format.events.value,
    test: Annotated[Optional[Path], typer.Option(help="sessions: test_samples.tsv (default: beside DATA)")] = None,
    registry: RegistryOpt = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help=_FROM_PRESET)] = None,
    time_budget: Annotated[Optional[float], typer.Option(callback=_POSITIVE, help="training wall seconds")] = None,
    promote: Annotated[bool, typer.Option(help="make the new version current")] = False,
    hidden: Annotated[Optional[int], typer.Option(min=1, help=_FROM_PRESET)] = None,
    max_len: Annotated[Optional[int], typer.Option(min=1, help=_FROM_PRESET)] = None,
    blocks: Annotated[Optional[int], typer.Option(min=0, help=_FROM_PRESET)] = None,
    heads: Annotated[Optional[int], typer.Option(min=1, help=_FROM_PRESET)] = None,
    dropout: Annotated[Optional[float], typer.Option(callback=_number(0.0, 1.0, high_open=True),
                                                     help=_FROM_PRESET)] = None,
    normalize: Annotated[Optional[bool], typer.Option(
        "--normalize/--no-normalize", help=f"cosine scores / temperature {_FROM_PRESET}")] = None,
    temperature: Annotated[Optional[float], typer.Option(callback=_POSITIVE, help=_FROM_PRESET)] = None,
    repeat_bonus: Annotated[Optional[bool], typer.Option(
        "--repeat-bonus/--no-repeat-bonus",
        help=f"a learned score per recency for candidates already in the history {_FROM_PRESET}")] = None,
    query_buckets: Annotated[int, typer.Option(min=0, help="hashed query-term buckets (events); 0 = off")] = 0,
    loss: Annotated[Optional[Loss], typer.Option(help="(default: ce)")] = None,
    lr: Annotated[Optional[float], typer.Option(callback=_POSITIVE, help=_FROM_PRESET)] = None,
    lr_decay: Annotated[Optional[float], typer.Option(
        callback=_number(0.0, 1.0, low_open=True),
        help=f"lr multiplied by this after every epoch {_FROM_PRESET}")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help=_FROM_PRESET)] = None,
    patience: Annotated[Optional[int], typer.Option(min=1, help=_FROM_PRESET)] = None,
    valid_fraction: Annotated[Optional[float], typer.Option(
        help=f"sessions: the last share of training sessions held out to choose the epoch {_FROM_PRESET}")] = None,
    ema_epochs: Annotated[Optional[float], typer.Option(
        help=f"validate and keep a moving average of the weights over about this many epochs (0 = off) {_FROM_PRESET}")] = None,
    recent_share: Annotated[Optional[float], typer.Option(
        help=f"sessions: the newest share of the training sessions, trained twice per epoch {_FROM_PRESET}")] = None,
    refit: Annotated[Optional[bool], typer.Option(
        "--refit/--no-refit",
        help=f"sessions: after the epoch is chosen, continue from it for one pass over the held-out and the "
             f"newest (--recent-share) sessions, and keep that {_FROM_PRESET}")] = None,
    precision: Annotated[Optional[Precision], typer.Option(
        help="bf16: forward pass and loss under bfloat16 autocast, weights stay float32; auto: bf16 where "
             f"the device has it natively {_FROM_PRESET}")] = None,
    device: Annotated[str, typer.Option(help="torch device for training")] = "cpu",
    device_hour_usd: HourOpt = None,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1)] = 42,
    measure_seconds: Annotated[float, typer.Option(callback=_POSITIVE, help="timing per variant")] = 1.0,
    resume: Annotated[Optional[Path], typer.Option(
        help="save the run's state here after every epoch, and continue from it if present")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the manifest as one JSON line")] = False,
) -> None:
    """Train a model, export its ONNX variants, measure them and register a version.

    Flags not given take the --format preset's values, validated on development data only.

    The manifest records the preset, the flags that overrode it and the final settings.
    """
    registry = registry or default_registry()
    from reckon.models.core.errors import ModelError
    from reckon.models.core.registry import Registry
    from reckon.models.training.config import TrainConfig
    from reckon.models.training.evaluate import evaluate_model
    from reckon.models.training.presets import configs, preset_for
    from reckon.models.training.publish import publish
    from reckon.models.training.train import train

    given = {"epochs": epochs, "hidden": hidden, "max_len": max_len, "blocks": blocks, "heads": heads,
             "dropout": dropout, "normalize": normalize, "temperature": temperature,
             "repeat_bonus": repeat_bonus, "lr": lr, "lr_decay": lr_decay,
             "batch_size": batch_size, "patience": patience, "loss": loss.value if loss else None,
             "precision": precision.value if precision else None, "valid_fraction": valid_fraction,
             "ema_epochs": ema_epochs, "recent_share": recent_share, "refit": refit}
    overrides = {k: v for k, v in given.items() if v is not None}
    try:
        preset = preset_for(fmt)
        held_out = {**preset.settings, **overrides}.get("valid_fraction", TrainConfig.valid_fraction)
        if not 0.0 <= held_out < 1.0:
            raise ValueError(f"--valid-fraction must be in [0, 1), got {held_out}")
        # Everything that can be checked before training is: nothing fails after the work.
        check_train_device(device)
        if resume is not None and resume.exists() and not (resume.is_file() and zipfile.is_zipfile(resume)):
            raise ValueError(f"--resume {resume}: not a training state saved by --resume")
        if resume is not None and not (resume.parent.is_dir() and os.access(resume.parent, os.W_OK | os.X_OK)):
            # torch.save would fail there after the first epoch's work
            raise ValueError(f"--resume {resume}: {resume.parent} is not a writable directory")
        Registry.check_writable(registry)
        dataset = _load(data, fmt, test, query_buckets, valid_fraction=held_out)
        empty = _no_training_data(data, dataset)
        if empty:
            raise ValueError(empty)
        protocol = _default_protocol(Format(fmt), dataset.num_items, dataset.valid, dataset.test)
        model_cfg, train_cfg = configs(preset, dataset.num_items, {
            **overrides, "query_buckets": query_buckets, "seed": seed, "time_budget": time_budget,
            "device": device, "valid_protocol": protocol})
        cpu_started = time.process_time()
        result = train(dataset, model_cfg, train_cfg, resume_path=resume)
        cost = training_cost(result.wall_seconds, time.process_time() - cpu_started, device, device_hour_usd)
        test_metrics = evaluate_model(result.model, dataset.test, protocol) if len(dataset.test) else {}
        mv = publish(
            result.model, Registry(registry), dataset.item_ids, dataset.description,
            training={**train_cfg.to_dict(), "preset": preset.name, "preset_validated_on": preset.validated_on,
                      "overrides": overrides, "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                      "stopped": result.stopped, "wall_seconds": round(result.wall_seconds, 2),
                      "precision_used": result.precision, "refit_epoch": result.refit,
                      "history": result.history, "cost": cost},
            metrics={"protocol": protocol, "valid": result.valid, "test": test_metrics},
            eval_set=dataset.test if len(dataset.test) else dataset.valid, protocol=protocol,
            device_hour_usd=device_hour_usd if device_hour_usd is not None else DEVICE_HOUR_USD["cpu"],
            measure_seconds=measure_seconds, promote=promote,
        )
    except (ModelError, ValueError) as exc:
        _fail(str(exc))
        return
    if as_json:
        print(json.dumps(usd_strings(mv.manifest)))
        return
    console.print(f"registered [bold]{escape(mv.version)}[/bold] in {escape(str(registry))}"
                  + (" (promoted)" if promote else ""))
    console.print(f"preset {preset.name} ({preset.validated_on})"
                  + (", overridden: " + ", ".join(f"{k} {v}" for k, v in overrides.items()) if overrides else ""))
    console.print(f"epochs {result.epochs_run} (best {result.best_epoch}, stopped: {result.stopped}), "
                  + ("" if result.refit is None else f"then one pass from epoch {result.best_epoch} over the "
                     "held-out and newest sessions, ")
                  + f"{result.wall_seconds:.0f}s, training cost {usd(cost['cost_usd'])} "
                  + f"({cost['device']} at ${cost['device_hour_usd']:g}/h)")
    if test_metrics:
        _print_metrics(f"test ({protocol})", test_metrics)
    _print_variants(mv.manifest)


def _training_cost(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """A version's training cost: its retrain's, or its `reckon train` run's (None before either recorded one)."""
    return manifest.get("retraining", {}).get("training_cost") or manifest.get("training", {}).get("cost")


def _print_variants(manifest: dict[str, Any]) -> None:
    table = Table(title=f"variants of {manifest['version']}")
    for col in ("variant", "MB", "scores/s", "device s / 1k scores", "$ / 1k scores", "Δ ndcg@10 vs fp32"):
        table.add_column(col)
    for name, v in manifest.get("variants", {}).items():
        delta = v.get("quality_delta_vs_fp32", {}).get("ndcg@10")
        table.add_row(name, f"{v['bytes'] / 1e6:.2f}", f"{v['scores_per_second']:.0f}",
                      f"{v['device_seconds_per_1k_scores']:.4f}", usd(v["cost_per_1k_scores_usd"]),
                      "" if delta is None else f"{delta:+.4f}")
    console.print(table)


def eval_cmd(
    data: Annotated[Path, typer.Argument(metavar="DATA", help="the data the version was trained on (same format)")],
    fmt: FormatOpt = Format.events,
    test: Annotated[Optional[Path], typer.Option(help="sessions: test_samples.tsv (default: beside DATA)")] = None,
    registry: RegistryOpt = None,
    version: Annotated[Optional[str], typer.Option(help="default: the promoted version")] = None,
    protocol: Annotated[Optional[ProtocolOpt], typer.Option(help="default: sampled100 for sasrec, else full")] = None,
    variant: Annotated[EvalVariant, typer.Option(help="torch checkpoint or an ONNX variant (CPU provider)")] = EvalVariant.torch,
    split: Annotated[str, typer.Option(help="test | valid")] = "test",
    limit: Annotated[Optional[int], typer.Option(min=1, help="evaluate a random subset of this size")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """HR@K, NDCG@K and MRR@K of a registered version (full ranking or 100 sampled negatives)."""
    registry = registry or default_registry()
    from reckon.models.core.errors import ModelError
    from reckon.models.core.registry import Registry
    from reckon.models.serving.scorer import Scorer
    from reckon.models.training.config import TrainConfig
    from reckon.models.training.data import canonical_format
    from reckon.models.training.evaluate import evaluate_model, evaluate_scorer
    from reckon.models.training.publish import load_checkpoint

    try:
        reg = Registry.existing(registry)
        mv = reg.get(version) if version else reg.current()
        if mv is None:
            _fail(f"no promoted version in {registry}; pass --version")
            return
        if split not in ("test", "valid"):
            raise ValueError(f"--split must be test or valid, got {split!r}")
        if split == "valid" and mv.manifest.get("training", {}).get("refit_epoch"):
            raise ValueError(f"{mv.version} trained on its held-out sessions after they chose its epoch (refit): "
                             "a score on them would be inflated; the chosen epoch's is metrics.valid in its manifest")
        cfg = mv.manifest["config"]
        trained_on = mv.manifest.get("data", {}).get("format")
        if trained_on and canonical_format(trained_on) != canonical_format(fmt.value):
            raise ValueError(f"{mv.version} was trained on --format {canonical_format(trained_on)} data, not "
                             f"{canonical_format(fmt.value)}: give it data of its format, or --version one trained "
                             f"on {canonical_format(fmt.value)} data")
        # The version's own held-out sessions (a version from before the setting: its default).
        held_out = TrainConfig.from_dict(mv.manifest.get("training", {})).valid_fraction
        dataset = _load(data, fmt.value, test, int(cfg.get("query_buckets", 0)), int(cfg.get("query_terms", 8)),
                               item_ids=mv.item_ids, valid_fraction=held_out)
        if dataset.num_items != int(cfg["num_items"]):
            _fail(f"{data} has {dataset.num_items} items but {mv.version} was trained on {cfg['num_items']}")
        dropped = dataset.description.get("test_samples_of_unknown_items", 0)
        if dropped:
            _err.print(f"note: {dropped:,} test examples of {escape(str(data))} have a label {escape(mv.version)} "
                       "does not know and are left out", highlight=False)
        unknown = dataset.description.get("clicks_on_unknown_items", 0)
        if unknown > dataset.description.get("clicks", 0):     # most of DATA is not what the version learned
            _err.print(f"note: {unknown:,} of {unknown + dataset.description['clicks']:,} clicks in {escape(str(data))} "
                       f"are on items {escape(mv.version)} does not know and are left out: was it trained on "
                       "other data? (--version picks another)", highlight=False)
        evalset = dataset.test if split == "test" else dataset.valid
        if not len(evalset):
            why = "" if canonical_format(fmt.value) == "sessions" else \
                f" of {mv.version}'s items (each needs a user with three or more clicks)"
            raise ValueError(f"nothing to evaluate: {data} gives no {split} examples{why}")
        if limit:
            evalset = evalset.subset(limit)
        proto = protocol.value if protocol else _default_protocol(fmt, dataset.num_items, evalset)
        if variant is EvalVariant.torch:
            metrics = evaluate_model(load_checkpoint(mv.path / "model.pt"), evalset, proto)
        else:
            scorer = Scorer.load(mv, device="cpu", variant=variant.value)
            metrics = evaluate_scorer(scorer.score, evalset, scorer.num_items, scorer.max_len, proto)
    except (ModelError, ValueError) as exc:
        _fail(str(exc))
        return
    out = {"version": mv.version, "variant": variant.value, "protocol": proto, "split": split, **metrics}
    if as_json:
        print(json.dumps(out))
    else:
        _print_metrics(f"{mv.version} {variant.value} {split} ({proto})", metrics)


def export_cmd(
    registry: RegistryOpt = None,
    version: Annotated[Optional[str], typer.Option(
        help="version to re-export as a new one, or to re-measure [--measure-only default: the promoted]")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="a model.pt to register (needs --data)")] = None,
    data: Annotated[Optional[Path], typer.Option(help="with --checkpoint: the training data (item ids, quality)")] = None,
    fmt: FormatOpt = Format.events,
    measure_only: Annotated[bool, typer.Option(help="only time the existing variants on this machine")] = False,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (for --measure-only)")] = "auto",
    device_hour_usd: HourOpt = None,
    measure_seconds: Annotated[float, typer.Option(callback=_POSITIVE, help="timing per variant")] = 2.0,
    quality_limit: Annotated[int, typer.Option(
        min=1, help="with --checkpoint: test examples for variant quality")] = 2000,
    promote: bool = False,
) -> None:
    """Export a checkpoint (or an existing version's) to ONNX fp32/int8/fp16 as a new version,
    or with --measure-only record this machine's scoring cost in a version's manifest."""
    registry = registry or default_registry()
    from reckon.models.core.errors import ModelError
    from reckon.models.core.registry import Registry
    from reckon.models.training.publish import load_checkpoint, publish

    try:
        if checkpoint is not None:
            if data is None:
                _fail("--checkpoint needs --data (and --format) for item ids and quality")
                return
            if measure_only:
                raise ValueError("--measure-only times a registered version: it takes no --checkpoint")
            model = load_checkpoint(checkpoint)
            Registry.check_writable(registry)
            dataset = _load(data, fmt.value, None, model.config.query_buckets, model.config.query_terms)
            if dataset.num_items != model.config.num_items:
                raise ValueError(f"{data} has {dataset.num_items} items but {checkpoint} was trained on "
                                 f"{model.config.num_items}")
            mv = publish(model, Registry(registry), dataset.item_ids, dataset.description,
                         training={"checkpoint": str(checkpoint)},
                         eval_set=dataset.test, protocol=_default_protocol(fmt, dataset.num_items, dataset.test),
                         measure_seconds=measure_seconds,
                         quality_limit=quality_limit,
                         device_hour_usd=device_hour_usd or DEVICE_HOUR_USD["cpu"], promote=promote)
        else:
            reg = Registry.existing(registry)
            if version is None and not measure_only:    # a bare `reckon export` registered a copy each call
                _fail("give what to export: --version V (a registered version, as a new one), or --checkpoint "
                      "with --data; --measure-only re-measures the promoted version")
                return
            src = reg.get(version) if version else reg.current()
            if src is None:
                _fail(f"no promoted version in {registry}; pass --version or --checkpoint")
                return
            if measure_only:
                mv = _measure(reg, src.version, device, device_hour_usd, measure_seconds)
            else:
                mv = publish(load_checkpoint(src.path / "model.pt"), reg, src.item_ids, src.manifest.get("data", {}),
                             training={**{k: v for k, v in src.manifest.get("training", {}).items() if k != "cost"},
                                       "exported_from": src.version},   # its training cost is the source's
                             metrics=src.manifest.get("metrics", {}), measure_seconds=measure_seconds,
                             device_hour_usd=device_hour_usd or DEVICE_HOUR_USD["cpu"], promote=promote)
    except (ModelError, ValueError) as exc:
        _fail(str(exc))
        return
    console.print(f"[bold]{escape(mv.version)}[/bold] in {escape(str(registry))}" + (" (promoted)" if promote else ""))
    _print_variants(mv.manifest)
    for key, rows in mv.manifest.get("measurements", {}).items():
        console.print(f"measured on {key}: " + ", ".join(
            f"{v}: {r['device_seconds_per_1k_scores']:.4f} device s and {usd(r['cost_per_1k_scores_usd'])} "
            "per 1k scores"
            for v, r in rows.items()), soft_wrap=True)


def _measure(reg: Any, version: str, device: str, hour_usd: float | None, seconds: float) -> Any:
    """Time each variant through Scorer on this machine and record it in the manifest."""
    from reckon.models.serving.costing import cost_per_1k, time_scoring
    from reckon.models.serving.scorer import Scorer

    mv = reg.get(version)
    rows: dict[str, Any] = {}
    label = "cpu"
    for variant in mv.variants:
        scorer = Scorer.load(mv, device=device, variant=variant)
        label = scorer.device
        price = hour_usd if hour_usd is not None else DEVICE_HOUR_USD["cuda" if label.startswith("cuda") else "cpu"]
        cfg = mv.manifest["config"]
        timing = time_scoring(scorer.score, scorer.num_items, scorer.max_len, seconds=seconds,
                              query_buckets=int(cfg.get("query_buckets", 0)), query_terms=int(cfg.get("query_terms", 8)))
        rows[variant] = {"provider": scorer.provider, **timing, "device_hour_usd": price,
                         "cost_per_1k_scores_usd": cost_per_1k(timing["device_seconds_per_1k_scores"], price)}
    return reg.record_measurement(version, label, rows)


# Per version id, its online quality over the last `hours` (the main CLI reads it from
# ClickHouse, which this package does not know): (rows by version, None) or ({}, why not).
OnlineQuality = Callable[[float], tuple[dict[str, dict[str, Any]], Optional[str]]]


def offline_quality(manifest: dict[str, Any]) -> tuple[dict[str, float], str]:
    """A version's recorded quality and what it was measured on: a retrained version's on the
    latest slice of its window, else the test split's, else the validation split's."""
    judged = manifest.get("retraining", {}).get("offline_quality")
    if judged:
        return judged["candidate"], f"latest slice, {judged['examples']} examples"
    metrics = manifest.get("metrics", {})
    for split in ("test", "valid"):
        if metrics.get(split):
            protocol = metrics.get("protocol")
            return metrics[split], split + (", 100 sampled items" if protocol == "sampled100" else
                                            ", full ranking" if protocol == "full" else "")
    return {}, ""


def _list_command(online: OnlineQuality | None) -> Callable[..., None]:
    def list_cmd(registry: RegistryOpt = None,
                 hours: Annotated[float, typer.Option(callback=_number(0.001), help="online quality over this "
                                                      "many hours, ending now")] = 24.0,
                 as_json: Annotated[bool, typer.Option("--json")] = False,
                 wide: Annotated[bool, typer.Option("--wide", help="every column (the default fits 80 columns)")]
                 = False) -> None:
        """Registered versions, oldest first; * marks the promoted one. Training cost, offline
        quality (what it was measured on) and online quality (attributed CTR, 95 % interval)."""
        registry = registry or default_registry()
        from reckon.models.core.errors import ModelError
        from reckon.models.core.registry import Registry

        try:
            reg = Registry.existing(registry)
            current = reg.current_id()
            versions, unreadable = reg.scan()
        except ModelError as exc:
            _fail(str(exc))
            return
        for problem in unreadable.values():       # listed without them, said on stderr
            _err.print(f"[yellow]warning:[/yellow] {escape(problem)}", highlight=False, soft_wrap=True)
        try:
            live, why_not = online(hours) if online is not None else ({}, "no ClickHouse reader")
        except ValueError as exc:   # the report's own bound on its window (e.g. at most 400 days)
            raise typer.BadParameter(str(exc), param_hint="'--hours'") from None
        if as_json:
            print(json.dumps(usd_strings([{
                "version": mv.version, "current": mv.version == current, "created": mv.manifest.get("created"),
                "variants": mv.variants, "metrics": mv.manifest.get("metrics", {}), "cost": mv.manifest.get("cost", {}),
                "offline_quality": dict(zip(("metrics", "measured_on"), offline_quality(mv.manifest))),
                "training_cost": _training_cost(mv.manifest),
                "promotion": mv.manifest.get("retraining", {}).get("promotion"),
                "online_quality": live.get(mv.version)} for mv in versions])))
            return
        # The `*` marker and the version id always whole (it says when it was made: date-time-hash,
        # and is what `model promote` takes), money at three significant digits. The default fits
        # the terminal (80 columns piped): columns go, last first, where they would not fit, and a
        # line says which. --wide: every column, every cell whole, however wide the terminal.
        if wide:
            headers = ["created", "variants", "items", "offline quality (measured on)", "training cost",
                       f"online CTR, {hours:g} h", "int8 $/1k scores", "retrain decision"]
        else:
            headers = ["hr@10", "training", f"CTR {hours:g} h", "int8 $/1k\nscores", "retrain"]
        rows: list[list[str]] = []
        any_sampled = False
        for mv in versions:
            m = mv.manifest
            quality, measured_on = offline_quality(m)
            sampled = "sampled" in measured_on
            any_sampled |= sampled
            cost = _training_cost(m)
            promotion = m.get("retraining", {}).get("promotion")
            row = live.get(mv.version)
            int8 = usd(m.get("cost", {}).get("int8", {}).get("cost_per_1k_scores_usd"))
            decision = "-" if promotion is None else ("promoted" if promotion["promoted"] else "refused")
            if wide:
                headline = ", ".join(f"{k} {quality[k]:.3f}" for k in ("hr@10", "ndcg@10") if k in quality)
                cells = [str(m.get("created", "")), ",".join(mv.variants), str(m.get("config", {}).get("num_items", "")),
                         f"{headline} ({measured_on})" if headline else "-",
                         "-" if cost is None else f"{usd(cost['cost_usd'])} ({cost['cpu_seconds']:.0f} CPU s)",
                         "-" if row is None else _ctr(row), int8, decision]
            else:
                ctr = None if row is None else row["attributed_ctr"]
                cells = [f"{quality['hr@10']:.3f}" + (" (100)" if sampled else "") if "hr@10" in quality else "-",
                         "-" if cost is None else usd(cost["cost_usd"]),
                         "-" if ctr is None else f"{ctr * 100:.2f} %", int8, decision]
            rows.append(["*" if mv.version == current else "", mv.version, *cells])
        shown = len(headers)
        table = _version_table(str(registry), headers, rows)
        while not wide and shown and _natural_width(table) > console.width:
            shown -= 1
            table = _version_table(str(registry), headers[:shown], rows)
        # Never squeezed: a table wider than the terminal (--wide, or a terminal narrower than the
        # marker and the version id) is printed whole, for the terminal or a pager to wrap.
        width = _natural_width(table)
        (console if width <= console.width else Console(width=width)).print(table)
        if not wide and any_sampled:
            console.print("hr@10 (100): ranked against 100 sampled items, not every item: not comparable with "
                          "the others", highlight=False)
        if shown < len(headers):
            console.print(f"not shown at {console.width} columns: "
                          + ", ".join(h.replace("\n", " ") for h in headers[shown:]) + " (--wide: every column)",
                          highlight=False)
        if why_not:
            console.print(f"online quality: {escape(why_not)}")

    return list_cmd


def _version_table(title: str, headers: list[str], rows: list[list[str]]) -> Table:
    """`model list`'s table: the marker, the version and ``headers``' columns of ``rows``, no cell
    wrapped (cells are data: no markup)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for header in ["", "version", *headers]:
        table.add_column(header, no_wrap=True)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row[:2 + len(headers)]))
    return table


def _natural_width(table: Table) -> int:
    """The columns ``table`` takes with no cell shortened (its title wraps, a cell would not)."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(100_000), table).maximum


def _ctr(row: dict[str, Any]) -> str:
    low, high = row["attributed_ctr_ci95"]
    if row["attributed_ctr"] is None:
        return "-"
    return f"{row['attributed_ctr'] * 100:.2f} % [{low * 100:.2f}, {high * 100:.2f}] of {row['recommendations']}"


def promote_cmd(version: Annotated[str, typer.Argument(metavar="VERSION")], registry: RegistryOpt = None) -> None:
    """Make VERSION the one workers serve (atomic pointer swap), once every file of it
    matches its checksum and every variant loads and scores a test row."""
    registry = registry or default_registry()
    from reckon.models.core.errors import ModelError
    from reckon.models.core.registry import Registry
    from reckon.models.serving.scorer import check_version

    try:
        Registry.existing(registry).promote(version, check=check_version)
    except ModelError as exc:
        _fail(str(exc))
        return
    console.print(f"promoted {escape(version)}")


def register(app: typer.Typer, online: OnlineQuality | None = None) -> None:
    """Add train, eval, export and the ``model`` sub-app to the main CLI; ``online`` supplies
    `model list`'s online quality."""
    from reckon.models.training.presets import PRESETS

    # A paragraph each: click's plain help rewraps paragraphs, not lines.
    presets = "\n\n".join(p.describe() for p in PRESETS.values())
    app.command("train", epilog=f"Presets by --format:\n\n{presets}")(train_cmd)
    app.command("eval")(eval_cmd)
    app.command("export")(export_cmd)
    model_app = typer.Typer(rich_markup_mode=None, help="Inspect and promote registered model versions.",
                            no_args_is_help=True)
    model_app.command("list")(_list_command(online))
    model_app.command("promote")(promote_cmd)
    app.add_typer(model_app, name="model")
