"""Scoring throughput and latency of a registered model version per device and variant.

    reckon bench scoring --registry .reckon/models [--version V [--version W ...]] [--threads 2]

For every version and available (device, variant) pair it times ``Scorer.score`` on
batches of 256 histories x 100 candidates (the manifest's cost unit) and reports a row per
pair: calls/s, p50/p99 milliseconds per call, device seconds and dollars per 1,000 scores
(`--json`: one JSON document, `{"rows": [...], "errors": [...]}`, on the last line).
Several versions are timed in the same interleaved rounds, so their rows compare as
ratios from one run. CUDA rows appear only where onnxruntime has the CUDA provider and
a GPU is visible.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import onnxruntime as ort

from reckon.bench.args import OneLineParser
from reckon.models.core.errors import ModelError
from reckon.models.core.registry import Registry
from reckon.models.serving.costing import DEVICE_HOUR_USD, cost_per_1k, time_scoring
from reckon.models.serving.runtime import cuda_device_name
from reckon.models.serving.scorer import Scorer
from reckon.streams.core.errors import ReckonError
from reckon.streams.reports.format import usd


def bench(scorer: Scorer, batch: int, candidates: int, seconds: float) -> dict:
    kind = "cuda" if scorer.device.startswith("cuda") else "cpu"
    timing = time_scoring(scorer.score, scorer.num_items, scorer.max_len, batch, candidates, seconds, warmup=3)
    return {
        "version": scorer.version, "device": scorer.device, "provider": scorer.provider, "variant": scorer.variant,
        **timing,
        "cost_per_1k_scores_usd": cost_per_1k(timing["device_seconds_per_1k_scores"], DEVICE_HOUR_USD[kind]),
        "device_hour_usd": DEVICE_HOUR_USD[kind],
    }


def main(argv: list[str] | None = None) -> None:
    try:
        _main(argv)
    except ModelError as exc:   # no registry there, a version not in it, a broken manifest
        raise ReckonError(str(exc)) from None


def _main(argv: list[str] | None) -> None:
    p = OneLineParser(prog="reckon bench scoring", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--registry", type=Path, default=None,
                   help="model registry (default: the one a worker with these settings reads)")
    p.add_argument("--version", action="append", default=None,
                   help="a version to time (repeatable); default: the promoted version")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads on CPU")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the fastest is reported")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = p.parse_args(argv)
    for name in ("batch", "candidates", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        p.error(f"--seconds must be a finite number > 0, got {args.seconds}")
    if args.registry is None:
        from reckon.models.cli import default_registry

        args.registry = default_registry()
    reg = Registry.existing(args.registry)
    versions = [reg.get(v) for v in args.version] if args.version else [reg.current()]
    if None in versions:
        raise ReckonError(f"no promoted version in {args.registry}; pass --version")
    devices = ["cpu"]
    if "CUDAExecutionProvider" in ort.get_available_providers() and cuda_device_name():
        devices.append("cuda")
    scorers, errors = {}, []
    for mv in versions:
        for device in devices:
            for variant in mv.variants:
                try:
                    scorers[mv.version, device, variant] = Scorer.load(
                        mv, device=device, variant=variant, threads=args.threads if device == "cpu" else None)
                except Exception as exc:  # report and go on: one broken provider should not hide the rest
                    errors.append({"version": mv.version, "device": device, "variant": variant,
                                   "error": str(exc)[:300]})
                    print(f"{mv.version} {device} {variant}: not loaded: {str(exc)[:300]}", file=sys.stderr)
    if not scorers:
        raise ReckonError("no variant could be loaded: " + "; ".join(
            f"{e['version']} {e['device']} {e['variant']}: {e['error']}" for e in errors)[:600])
    # Rounds interleave the variants so that load from other processes on a shared
    # machine hits them alike; the fastest round is the least disturbed estimate.
    rows: dict = {}
    for _ in range(args.rounds):
        for key, scorer in scorers.items():
            rows.setdefault(key, []).append(bench(scorer, args.batch, args.candidates, args.seconds))
    report = []
    for runs in rows.values():
        best = min(runs, key=lambda r: r["device_seconds_per_1k_scores"])
        spread = [round(r["device_seconds_per_1k_scores"], 5) for r in runs]
        report.append({**best, "threads": args.threads, "rounds_device_seconds_per_1k": spread})
    if args.json:
        print(json.dumps({"rows": report, "errors": errors}))
        return
    for row in report:
        print(f"{row['version']} {row['device']} {row['variant']}: {row['scores_per_second']:,.0f} scores/s, "
              f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms per call of {args.batch}x{args.candidates}, "
              f"{row['device_seconds_per_1k_scores']:.5f} device s and {usd(row['cost_per_1k_scores_usd'])} "
              f"per 1k scores (fastest of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
