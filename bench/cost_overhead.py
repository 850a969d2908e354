"""What cost accounting costs the full path, in one process and one run.

Every batch of live-shaped traffic runs with accounting (the batch meter, state bytes from
the store's sizes, the cost event and its allocation, the interval accountant, the event's
JSON on the wire and the sink's rows from it) and without (those replaced by no-ops), on
the same processor and copies of the same states (read from their stored form before the
timing starts, as a worker holds them); which side goes first alternates, so
both see the same inputs and share the machine's noise.
Each side is timed in CPU seconds of the threads a batch runs on (this one and the scoring
threads), which a shared machine's other processes do not inflate the way they do wall
time: at full load a worker's throughput is events per CPU-second. Even so, other
processes' cache traffic moves one run by several percent, so each batch runs `repeats`
times per side on copies of the states it reads (sides alternating) and the least
disturbed run of each side counts. The accounting parts are also timed on their own, batch
by batch; the median over batches of the with/without ratio is reported too.
Batches are as large as the worker's under load (its fetch bound, RECKON_BATCH_SIZE's
default when scoring); the heap is frozen and collected as the worker's is.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from reckon.models.serving.threads import THREAD_NAME, thread_cpu_seconds
from reckon.streams.pipeline.user_rows import UserRows
from reckon.streams.traffic.generator import TrafficGenerator


class _NullMeter:
    """BatchMeter's interface, measuring nothing."""

    def __init__(self, device: str) -> None:
        self.device_seconds = 0.0
        self.scoring_cpu_seconds = 0.0
        self.other_cpu_seconds = 0.0
        self.bytes_in = 0
        self.bytes_out = 0

    def usage(self, state_bytes: int) -> None:
        return None


def overhead(registry: Path, events: int = 60_000, batch: int = 2000, users: int = 20_000, repeats: int = 5) -> dict:
    import reckon.streams.pipeline.processor as proc
    from reckon.bench.rates import worker_gc
    from reckon.models.core.registry import Registry
    from reckon.models.serving.scorer import Scorer
    from reckon.streams.core.settings import Settings
    from reckon.streams.costs.idle import IntervalAccountant, Reserved
    from reckon.streams.costs.meter import cost_event, encode_event
    from reckon.streams.costs.pricing import PriceSheet
    from reckon.streams.pipeline.processor import BatchProcessor, runs_of
    from reckon.streams.sink.rows import rows_from_message

    settings = Settings(device="cpu")
    scorer = Scorer.load(Registry(registry).current(), device="cpu")
    sheet = PriceSheet.load()
    records = list(TrafficGenerator(seed=7, users=users).records(events))
    batches = [runs_of(records[i:i + batch]) for i in range(0, len(records), batch)]
    # One processor and one set of states for both sides (each run reads copies): two sets
    # would sit in different memory and differ by a few percent for that alone.
    processor = BatchProcessor(settings, sheet, lambda users: [scorer] * len(users), ram_gb=2.0)
    stored: dict[bytes, bytes] = {}      # state key -> stored form, as the store's commits write it
    accountant = IntervalAccountant(sheet, Reserved(2, 2), "bench", "cpu", 10.0)
    saved = proc.BatchMeter, proc.cost_event
    spent = {"with": 0.0, "without": 0.0, "accounting_parts": 0.0, "scorer_parts": 0.0}
    pairs: list[float] = []          # per batch: CPU with accounting / CPU without
    scorer.score(np.zeros((1, 1), dtype=np.int64), np.ones((1, 1), dtype=np.int64))   # the scoring thread exists
    scoring = [int(t) for t in os.listdir("/proc/self/task")
               if Path(f"/proc/self/task/{t}/comm").read_text().strip() == THREAD_NAME]

    def cpu() -> float:
        """CPU of the threads a batch runs on: this one and the scoring threads (not wall time:
        on a shared machine the time other processes take the core would land on either side)."""
        return time.thread_time() + sum(thread_cpu_seconds(tid) for tid in scoring)

    def run(side: str, chunk: list, chunk_users: list[tuple[str, str]]) -> tuple[float, Any, UserRows]:
        # A batch changes the states it reads: each run gets copies, so a batch can run again.
        scratch = UserRows(lambda key, partition: stored.get(key))
        scratch.rows_of(chunk_users, lambda i: 0)
        if side == "without":
            proc.BatchMeter, proc.cost_event = _NullMeter, lambda *a, **k: None
        try:
            started = cpu()
            out = processor.process(chunk, scratch, "cpu")
            if side == "with" and out.cost_event is not None:
                accountant.observe(out.cost_event)
                rows_from_message("cost_events", encode_event(out.cost_event))   # the wire and the sink's side
            return cpu() - started, out, scratch
        finally:
            proc.BatchMeter, proc.cost_event = saved

    with worker_gc():   # as the worker runs
        for i, chunk in enumerate(batches):
            chunk_users = list({(d.get("tenant") or settings.default_tenant, d["user_id"])
                                for _, run_ in chunk for r in run_ for d in [json.loads(r.value)]})
            best, outs, users = {"with": float("inf"), "without": float("inf")}, {}, None
            for rep in range(repeats):     # the least disturbed of a few runs, sides alternating
                for side in (("with", "without") if (i + rep) % 2 else ("without", "with")):
                    took, outs[side], scratch = run(side, chunk, chunk_users)
                    best[side] = min(best[side], took)
                    users = scratch if side == "with" else users
            held = users.held_bytes(outs["with"].changed)      # the sizes as the batch read them
            users.stage(outs["with"].changed, outs["with"].changed_partitions)
            stored.update(pair for pairs_ in users.snapshot().values() for pair in pairs_)
            for side in best:
                spent[side] += best[side]
            pairs.append(best["with"] / best["without"])
            event = outs["with"].cost_event
            if event is not None:                  # the accounting parts, timed alone
                groups = _groups(event)
                started = cpu()
                usage = proc.BatchMeter("cpu").usage(held)
                again = cost_event("b-x", usage, groups, sheet, "bench", 2.0)
                accountant.observe(again)
                wire = encode_event(again)
                scored = cpu()
                rows_from_message("cost_events", wire)
                spent["accounting_parts"] += cpu() - started
                spent["scorer_parts"] += scored - started
    with_, without = len(records) / spent["with"], len(records) / spent["without"]
    return {"events": len(records), "batch": batch, "users": users, "repeats": repeats,
            "events_per_cpu_s_with_accounting": round(with_), "events_per_cpu_s_without": round(without),
            # on/off: the median over batches of each batch's with/without CPU, and the sums' ratio
            "accounting_share_on_off": round(1 - 1 / statistics.median(pairs), 4),
            "accounting_share_on_off_quartiles": [round(1 - 1 / q, 4) for q in statistics.quantiles(pairs, n=4)[::2]],
            "accounting_share_of_summed_cpu": round(1 - with_ / without, 4),
            # timed alone: the scorer's part (meter, state bytes, cost event, interval, the wire
            # JSON) and all of it (with the sink's rows from that JSON, as a worker with role=all does)
            "scorer_accounting_share_of_batch_cpu": round(spent["scorer_parts"] / spent["with"], 4),
            "accounting_parts_share_of_batch_cpu": round(spent["accounting_parts"] / spent["with"], 4),
            "accounting_us_per_batch": round(spent["accounting_parts"] / len(batches) * 1e6)}


def _groups(event: dict) -> dict:
    """A batch's groups back from its cost event, to re-run cost_event on the same shape."""
    from reckon.streams.costs.meter import Group, group_key

    return {group_key(line["tenant"], line["model_version"], line["event_type"]):
            Group(line["events"], line["recommendations"], line["latencies_us"]) for line in event["lines"]}
