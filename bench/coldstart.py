"""New-item hit rate with and without cold start, measured on drifted traffic in one run.

    reckon bench coldstart [--events 16000] [--drift-at 6000] [--batch 25] [--train-seconds 20] [--json]

A small model is trained on generated traffic without drift (as the demo's first model
is). Then a drifted stream (new items appear and popularity moves from `--drift-at` on)
is scored through the batch processor (in process, no broker: what is measured is the
ranking, not the transport) three times, with fresh state each time:

* off: cold start disabled: an item the version never saw is never a candidate;
* uninformed: every new item gets the same vector (the trained items' mean): it can be a
  candidate and be scored, but nothing says where it belongs;
* served: the co-visitation estimate the worker uses (streams/pipeline/coldstart.py).

Hit rate@K (K = top_k, 10), next click in the session: for each user's first click in a
batch, was its item in the user's latest recommendation, published by an earlier batch
for an event of the same session? Reported over clicks on the drift's new items
(`new_item_hit_rate`) and over all such clicks after the drift, per arm;
`process_seconds` is the time the batch processor took over the whole stream (what cold
start adds to the scoring path, as a ratio between the arms of one run).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np

from reckon.bench.args import OneLineParser
from reckon.models.core.registry import Registry
from reckon.models.serving.scorer import Scorer
from reckon.streams.core.settings import Settings
from reckon.streams.costs.pricing import PriceSheet
from reckon.streams.pipeline.processor import BatchProcessor, runs_of
from reckon.streams.pipeline.user_rows import UserRows
from reckon.streams.traffic.generator import Catalog, Drift, Record, TrafficGenerator

ARMS = ("off", "uninformed", "served")


class _Uninformed(Scorer):
    """Takes every estimate as the trained items' mean vector (the control arm)."""

    def set_estimates(self, item_ids, vectors):  # type: ignore[no-untyped-def]
        mean = self.item_vectors(np.arange(1, self.trained_items + 1)).mean(axis=0)
        return super().set_estimates(item_ids, np.broadcast_to(mean, np.shape(vectors)))


def drifted_records(events: int, drift_at: int, seed: int = 31) -> list[Record]:
    gen = TrafficGenerator(seed=seed, drift=Drift(at=drift_at), start_ts=time.time() - 60 - 0.05 * events)
    return list(gen.records(events))


def hit_rates(registry: Path, records: list[Record], arm: str, batch: int = 25, new_from: int = 2000) -> dict:
    """Score `records` in batches of `batch` and count next-click hits (see the module doc)."""
    mv = Registry(registry).current()
    scorer = (_Uninformed if arm == "uninformed" else Scorer).load(mv, device="cpu", variant="fp32")
    processor = BatchProcessor(Settings(worker_name="bench", cold_start=arm != "off"), PriceSheet.load(env={}),
                               lambda users: [scorer] * len(users))
    users = UserRows(lambda key, partition: None)
    latest: dict[str, tuple[str, set[str]]] = {}     # user -> (session of the trigger, items)
    session_of: dict[str, str] = {}                   # event id -> session id
    counts = {"new_clicks": 0, "new_hits": 0, "clicks": 0, "hits": 0, "estimates": 0, "process_seconds": 0.0}
    drifted = False
    for start in range(0, len(records), batch):
        chunk = records[start:start + batch]
        firsts: dict[str, tuple[str, str]] = {}
        for record in chunk:
            event = json.loads(record.value)
            session_of[event["event_id"]] = event["session_id"]
            if "item_id" in event:
                firsts.setdefault(event["user_id"], (event["item_id"], event["session_id"]))
        for user, (item, session) in firsts.items():
            new = int(item[1:]) >= new_from
            drifted = drifted or new
            if not drifted or latest.get(user, ("",))[0] != session:
                continue
            hit = item in latest[user][1]
            counts["clicks"] += 1
            counts["hits"] += hit
            counts["new_clicks"] += new
            counts["new_hits"] += new and hit
        started = time.perf_counter()
        out = processor.process(runs_of(chunk), users, "cpu")
        counts["process_seconds"] += time.perf_counter() - started
        users.stage(out.changed, out.changed_partitions)
        counts["estimates"] += out.counts["cold_start_estimates"]
        for _, value in out.recommendations:
            rec = json.loads(value)
            latest[rec["user_id"]] = (session_of[rec["trigger_event_id"]], set(rec["items"]))
    return {"arm": arm, **counts,
            "new_item_hit_rate": counts["new_hits"] / counts["new_clicks"] if counts["new_clicks"] else None,
            "hit_rate_after_drift": counts["hits"] / counts["clicks"] if counts["clicks"] else None,
            "estimated_items": scorer.num_items - scorer.trained_items}


def pre_drift_model(directory: Path, seconds: float, events: int = 20_000) -> Path:
    """The demo's first model: trained on traffic without drift (models/training/bootstrap.py)."""
    from reckon.models.training.bootstrap import ensure_model

    ensure_model(directory, islice(TrafficGenerator(seed=99).sessions(), events), seconds=seconds)
    return directory


def run(registry: Path, events: int, drift_at: int, batch: int) -> Iterator[dict]:
    records = drifted_records(events, drift_at)
    for arm in ARMS:
        yield {**hit_rates(registry, records, arm, batch, Catalog().items), "events": events,
               "drift_at": drift_at, "batch": batch}


def main(argv: list[str] | None = None) -> None:
    p = OneLineParser(prog="reckon bench coldstart", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=16_000)
    p.add_argument("--drift-at", type=int, default=6_000)
    p.add_argument("--batch", type=int, default=25, help="events per processed batch")
    p.add_argument("--train-seconds", type=float, default=20.0, help="training budget of the pre-drift model")
    p.add_argument("--json", action="store_true", help="one JSON document, {\"rows\": [...]}, on stdout")
    args = p.parse_args(argv)
    if args.events < 1 or args.batch < 1:
        p.error(f"--events and --batch must be >= 1, got {args.events} and {args.batch}")
    if not 0 <= args.drift_at < args.events:
        p.error(f"--drift-at must be in [0, --events), got {args.drift_at} with --events {args.events}: "
                "the hit rates are measured on the clicks after the drift")
    if not (math.isfinite(args.train_seconds) and args.train_seconds > 0):
        p.error(f"--train-seconds must be a finite number > 0, got {args.train_seconds}")
    with tempfile.TemporaryDirectory(prefix="reckon-coldstart-") as tmp:
        registry = pre_drift_model(Path(tmp) / "models", args.train_seconds)
        rows = list(run(registry, args.events, args.drift_at, args.batch))
    if args.json:
        print(json.dumps({"rows": rows}))
        return
    for row in rows:
        print(", ".join(f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
