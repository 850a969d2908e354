"""Does the Kafka -> ClickHouse sink keep up with the full path? Both measured in one run.

1. full path: a scoring worker (no sink in it) works through a backlog of live-shaped
   clicks and searches; its rate in events/s and recommendations/s (from the end of its
   first batch to the end of its last, as `reckon bench stream` measures);
2. sink: a sink-only worker (recommendation and click logs on, the default) then reads
   what the full path left on the topics, `recommendations`, `clicks` and `cost-events`,
   into its own chdb store; its rate in rows/s from its first message to its last flush.

The full path leaves one click row per click and one recommendation row per user per batch;
the sink keeps up when its rows/s reach the rows/s the full path produces (the log rows),
and the recommendation rate at the least.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from reckon.streams.kafka.broker import EmbeddedBroker, create_topics
from reckon.streams.traffic.generator import TrafficGenerator
from reckon.streams.traffic.replay import produce
from reckon.streams.worker.stack import WorkerProcess, start_worker

_SUNK = ("recs_logged", "clicks_logged", "cost_rows_written", "storage_rows_written")


def _drained(worker: WorkerProcess, done: Callable[[dict], bool], timeout_s: float = 900) -> dict:
    """Poll until `done(stats)`; the last stats."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = worker.stats() or {}
        if done(stats):
            return stats
        time.sleep(0.05)
    raise TimeoutError("the worker did not finish in time")


def sink_vs_full_path(registry: Path, root: Path, events: int = 60_000, users: int = 20_000) -> dict:
    records = list(TrafficGenerator(seed=43, users=users).records(events))
    clicks = sum(r.topic == "clicks" and r.valid for r in records)       # one click row each
    with EmbeddedBroker(log_path=root / "broker-sink.log") as broker:
        bootstrap = broker.bootstrap_servers
        create_topics(bootstrap, 4)
        asyncio.run(produce(bootstrap, records))
        scorer = start_worker(bootstrap, registry, root / "full", "full", RECKON_ROLE="scorer", RECKON_DEVICE="cpu")
        try:
            full = _drained(scorer, lambda s: s.get("consumed", 0) >= events)
        finally:
            scorer.stop()
        sink = start_worker(bootstrap, registry, root / "sink", "sink", RECKON_ROLE="sink")
        try:
            last = _drained(
                sink, lambda s: s.get("recs_logged", 0) >= full["recommendations"]
                and s.get("clicks_logged", 0) >= clicks)
        finally:
            sink.stop()
    # The full path from the end of its first batch to the end of its last (its share of the work).
    span = full["last_batch_at"] - full["first_batch_at"]
    share = (full["consumed"] - full["first_batch_consumed"]) / full["consumed"]
    recs_per_s = full["recommendations"] * share / span
    log_rows_per_s = (full["recommendations"] + clicks) * share / span
    # The sink from its first message to its last flush.
    rows = sum(last.get(k, 0) for k in _SUNK)
    sink_rows_per_s = rows / (last["sink_flushed_at"] - last["sink_first_message_at"])
    return {"events": events, "users": users, "recommendations": full["recommendations"], "click_rows": clicks,
            "full_path_events_per_s": round(full["consumed"] * share / span),
            "full_path_recommendations_per_s": round(recs_per_s), "full_path_log_rows_per_s": round(log_rows_per_s),
            "sink_rows_per_s": round(sink_rows_per_s), "sink_flushes": last.get("sink_flushes", 0),
            "sink_rows_over_full_path_recommendations": round(sink_rows_per_s / recs_per_s, 2),
            "sink_rows_over_full_path_log_rows": round(sink_rows_per_s / log_rows_per_s, 2)}
