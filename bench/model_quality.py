"""Quality of Reckon's sequence model on public datasets, in their published protocols.

    reckon bench quality diginetica --data-dir DATASETS [--device cuda]
    reckon bench quality games      --data-dir DATASETS

DATASETS: the folder holding the public datasets (diginetica/, games/, ...).

diginetica: SR-GNN split, full ranking over all 43,097 items, P@20 / MRR@20 (percent).
games:      SASRec split (last item test), 100 sampled negatives, HR@10 / NDCG@10.
Prints one JSON object (also appended to --out) with the config, epochs, wall time,
the machine, and validation/test metrics. Results are summarised in bench/MODEL.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import reckon.models.training  # noqa: F401  (first: it asks torch for huge pages before torch starts)
import torch  # noqa: I001

from reckon.bench.args import OneLineParser
from reckon.models.core.errors import ModelError
from reckon.models.training.data import load_sasrec, load_sessions
from reckon.models.training.evaluate import evaluate_model
from reckon.models.training.presets import PRESETS as TRAIN_PRESETS
from reckon.models.training.presets import configs
from reckon.models.training.train import train
from reckon.streams.core.errors import ReckonError

# The `sessions` and `sasrec` presets of `reckon train` (runs E4 and G2 in MODEL.md).
PRESETS = {"diginetica": configs(TRAIN_PRESETS["sessions"], num_items=1),
           "games": configs(TRAIN_PRESETS["sasrec"], num_items=1)}



# --set fields that count something (at least 1) and floats that must be > 0.
_AT_LEAST_ONE = {"epochs", "batch_size", "hidden", "max_len", "heads", "patience", "query_terms"}
_POSITIVE = {"lr", "temperature", "lr_decay"}


def main(argv: list[str] | None = None) -> dict:
    try:
        return _main(argv)
    except ModelError as exc:   # a data file missing or malformed: its one line
        raise ReckonError(str(exc)) from None


def _main(argv: list[str] | None) -> dict:
    p = OneLineParser(prog="reckon bench quality", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=sorted(PRESETS))
    p.add_argument("--data-dir", type=Path, default=None,
                   help="the folder holding the public datasets (diginetica/, games/, ...); required")
    p.add_argument("--device", default="cpu")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a ModelConfig/TrainConfig field, e.g. --set hidden=100 --set epochs=5")
    p.add_argument("--time-budget", type=float, default=None, help="training wall seconds")
    p.add_argument("--valid-limit", type=int, default=20000)
    p.add_argument("--valid-fraction", type=float, default=None,
                   help="diginetica: share of (the last) training sessions held out for validation "
                        "(default: the preset's); 0 trains on all of them for exactly --set epochs=N")
    p.add_argument("--resume", type=Path, default=None,
                   help="save the run's state here after every epoch; continue from it if present")
    p.add_argument("--save", type=Path, default=None, help="write the trained checkpoint here")
    p.add_argument("--out", type=Path, default=None, help="append the JSON result to this file")
    p.add_argument("--tag", default="")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.time_budget is not None and not (math.isfinite(args.time_budget) and args.time_budget > 0):
        p.error(f"--time-budget must be a finite number of seconds > 0, got {args.time_budget}")
    if args.valid_limit < 1:
        p.error(f"--valid-limit must be >= 1, got {args.valid_limit}")
    if args.valid_fraction is not None and not 0.0 <= args.valid_fraction < 1.0:
        p.error(f"--valid-fraction must be in [0, 1), got {args.valid_fraction}")
    from reckon.models.cli import check_train_device

    try:
        check_train_device(args.device)
    except ValueError as exc:
        p.error(str(exc))

    model_cfg, train_cfg = PRESETS[args.dataset]
    for kv in args.set:
        key, sep, raw = kv.partition("=")
        if not sep:
            p.error(f"--set takes KEY=VALUE, got {kv!r}")
        target = model_cfg if hasattr(model_cfg, key) else train_cfg
        if not hasattr(target, key) or key in ("num_items", "device", "time_budget"):
            p.error(f"--set: unknown field {key!r}")
        kind = type(getattr(target, key))
        try:
            value = raw.lower() in ("1", "true", "yes") if kind is bool else (raw if kind is str else kind(raw))
        except ValueError:
            p.error(f"--set {key}: expected {kind.__name__}, got {raw!r}")
        if kind in (int, float) and (not math.isfinite(value) or value < 0 or (key in _AT_LEAST_ONE and value < 1)
                                     or (key in _POSITIVE and value <= 0)):
            p.error(f"--set {key}: {raw} is out of range")
        try:
            if target is model_cfg:
                model_cfg = replace(model_cfg, **{key: value})
            else:
                train_cfg = replace(train_cfg, **{key: value})
        except ValueError as exc:       # the configs' own checks
            p.error(f"--set {key}: {exc}")
    train_cfg = replace(train_cfg, device=args.device, time_budget=args.time_budget)
    if args.valid_fraction is not None:
        train_cfg = replace(train_cfg, valid_fraction=args.valid_fraction)

    if args.data_dir is None:     # checked after the options, which need no data to be refused
        p.error("--data-dir: give the folder holding the public datasets (diginetica/, games/, ...)")
    t0 = time.monotonic()
    if args.dataset == "diginetica":
        d = args.data_dir / "diginetica"
        data = load_sessions(d / "train_sessions.txt", d / "test_samples.tsv", train_cfg.valid_fraction)
        protocol, ks = "full", (10, 20)
    else:
        data = load_sasrec(args.data_dir / "games" / "Video.txt")
        protocol, ks = "sampled100", (10, 20)
    model_cfg = replace(model_cfg, num_items=data.num_items)
    load_s = time.monotonic() - t0

    result = train(data, model_cfg, train_cfg, progress=not args.quiet, valid_limit=args.valid_limit,
                   resume_path=args.resume)
    model = result.model.to(args.device)
    t1 = time.monotonic()
    test = evaluate_model(model, data.test, protocol, ks=ks)
    out = {
        "dataset": args.dataset, "tag": args.tag, "protocol": protocol,
        "test": test, "valid": result.valid,
        "epochs_run": result.epochs_run, "best_epoch": result.best_epoch, "stopped": result.stopped,
        "train_wall_s": round(result.wall_seconds, 1), "eval_wall_s": round(time.monotonic() - t1, 1),
        "load_wall_s": round(load_s, 1),
        "machine": {"device": args.device, "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
                    "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version()},
        "model_config": model_cfg.to_dict(), "train_config": train_cfg.to_dict(),
        "data": data.description, "history": result.history,
    }
    if args.save:
        from reckon.models.training.publish import save_checkpoint

        save_checkpoint(result.model.cpu(), args.save)
    line = json.dumps(out)
    if args.out:
        with args.out.open("a") as fh:
            fh.write(line + "\n")
    headline = ({"P@20": 100 * test["hr@20"], "MRR@20": 100 * test["mrr@20"]} if args.dataset == "diginetica"
                else {"HR@10": test["hr@10"], "NDCG@10": test["ndcg@10"]})
    print(json.dumps({"dataset": args.dataset, "tag": args.tag, **headline, "epochs": result.epochs_run,
                      "best_epoch": result.best_epoch, "train_wall_s": out["train_wall_s"]}))
    return out


if __name__ == "__main__":
    main()
