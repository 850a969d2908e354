"""`reckon bench costs`: what cost accounting costs and how true and fresh it is, each part
measured within one run (ratios, so a noisy shared machine affects both sides alike).

1. overhead: accounting's share of full-path throughput, in-process, on and off in lockstep
   (bench/cost_overhead.py);
2. outside: the device and CPU seconds the cost events of a worker's run add up to, against
   the kernel's per-thread count read from /proc outside the worker (bench/cost_outside.py);
3. sink: the Kafka -> ClickHouse sink's rows/s against the rows/s the full path produces,
   recommendation and click logs on (bench/cost_sink.py);
4. freshness: produced -> visible in the rollups under load (bench/cost_freshness.py).

    reckon bench costs --json                # all four
    reckon bench costs --only outside        # one part
"""

from __future__ import annotations

import json
import tempfile
from itertools import islice
from pathlib import Path
from typing import Any

from reckon.bench.args import OneLineParser
from reckon.streams.traffic.generator import TrafficGenerator

PARTS = ("overhead", "outside", "sink", "freshness")


def _registry() -> Path:
    from reckon.models.training.bootstrap import ensure_model
    from reckon.streams.core.settings import load_settings

    registry = load_settings().registry_dir.resolve()
    ensure_model(registry, islice(TrafficGenerator(seed=99).sessions(), 20_000))
    return registry


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="reckon bench costs", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=PARTS, action="append", help="run this part (repeatable); default all")
    parser.add_argument("--events", type=int, default=60_000, help="events for the overhead, outside and sink parts")
    parser.add_argument("--users", type=int, default=20_000, help="distinct users in the generated traffic")
    parser.add_argument("--onnx-threads", type=int, default=1, help="ONNX Runtime intra-op threads (outside part)")
    parser.add_argument("--json", action="store_true", help="one JSON line")
    args = parser.parse_args(argv)
    if args.events < 1000 or args.users < 1 or args.onnx_threads < 1:
        parser.error("--events must be >= 1000, --users and --onnx-threads >= 1")
    chosen = args.only or list(PARTS)
    registry = _registry()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="reckon-cost-bench-") as tmp:
        if "overhead" in chosen:
            from reckon.bench.cost_overhead import overhead

            result["overhead"] = overhead(registry, events=args.events, users=args.users)
        if "outside" in chosen:
            from reckon.bench.cost_outside import outside

            result["outside"] = outside(registry, Path(tmp), events=args.events, users=args.users,
                                        onnx_threads=args.onnx_threads)
        if "sink" in chosen:
            from reckon.bench.cost_sink import sink_vs_full_path

            result["sink"] = sink_vs_full_path(registry, Path(tmp), events=args.events, users=args.users)
        if "freshness" in chosen:
            from reckon.bench.cost_freshness import freshness

            result["freshness"] = freshness(registry, Path(tmp))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
