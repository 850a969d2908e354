"""Stream benchmark: what a raw aiokafka read, Faust, Reckon's ingest and its full path
each sustain on one backlog, and event-to-recommendation latency against the broker's
own floor, all in one run.

1. produce `events` generated clicks to `clicks` (the backlog);
2. raw: a plain aiokafka getmany() loop re-reads the backlog for at least `min_seconds`,
   before the first ingest worker and after each one (bench/rates.py);
3. ingest: `repeats` workers (trigger=none), each under a group of its own, validate and
   fold every event into user state with its changelog; each is paired with the raw
   reads around it, and the ingest ratio is reported as min / median / max of the pairs;
4. floor: Faust's consumer with Reckon's batch transport and an empty handler, re-reading
   the backlog for at least `min_seconds` as the raw read does;
5. full: `repeats` workers that also score and publish, timed over `min_seconds` of work;
6. latency, on a fresh broker: one full worker, loads at 10 %, 50 % and 90 % of the
   median full-path rate for `latency_s` seconds each; at each load the broker's floor
   (a plain producer and consumer, same rate and fetch settings) is measured first
   (bench/latency.py). The headline figures are those at 50 %.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from reckon.bench.latency import broker_floor, percentiles, recommendation_latencies, send_at_rate
from reckon.bench.rates import clicks, faust_floor, produce_backlog, raw_read, spread, worker, worker_rate
from reckon.streams.kafka.broker import TOPICS, EmbeddedBroker, create_topics

LOAD_LEVELS = (0.1, 0.5, 0.9)
FETCH_WAIT_MS = 20      # the worker's default RECKON_BATCH_WAIT_MS
MAX_RECORDS = 2000      # the default batch of a worker that scores


def _rates(registry: Path, workdir: Path, bootstrap: str, events: int, repeats: int, min_seconds: float) -> dict:
    raw = [asyncio.run(raw_read(bootstrap, "clicks", events, min_seconds))]
    ingest, ingest_s, pairs = [], [], []
    for i in range(repeats):
        proc = worker(bootstrap, registry, workdir, f"ingest{i}", "none")
        try:
            rate, seconds, _ = worker_rate(proc, events)
        finally:
            proc.stop()
        raw.append(asyncio.run(raw_read(bootstrap, "clicks", events, min_seconds)))
        ingest.append(rate)
        ingest_s.append(seconds)
        pairs.append(rate / ((raw[-2] + raw[-1]) / 2))
    floors = [faust_floor(bootstrap, "clicks", events, workdir / f"floor{i}", min_seconds) for i in range(repeats)]
    full, full_s = [], []
    for i in range(repeats):
        proc = worker(bootstrap, registry, workdir, f"full{i}", "all")
        try:
            rate, seconds, stats = worker_rate(proc, events, min_seconds=min_seconds)
        finally:
            proc.stop()
        full.append(rate)
        full_s.append(seconds)
    floor = [f["events_per_s"] for f in floors]
    raw_median = statistics.median(raw)
    return {
        "raw_aiokafka_events_per_s": spread(raw), "raw_reads_events_per_s": [round(r) for r in raw],
        "faust_empty_handler_events_per_s": spread(floor),
        "faust_empty_over_raw": round(statistics.median(floor) / raw_median, 3),
        "ingest_events_per_s": spread(ingest),
        "ingest_over_raw": spread(pairs, 3),
        "full_path_events_per_s": spread(full),
        "full_over_raw": round(statistics.median(full) / raw_median, 3),
        # one model row per user per batch: recommendations over rows is what that saved
        "full_path_recommendations_per_scored_row": round(
            stats.get("recommendations", 0) / max(stats.get("scored_rows", 0), 1), 2),
        "timed_seconds": {"faust_floor_min": round(min(f.get("seconds", 0.0) for f in floors), 2),
                          "ingest_min": round(min(ingest_s), 2), "full_path_min": round(min(full_s), 2)},
    }


def _latency_curve(registry: Path, workdir: Path, full_rate: float, users: int, interleave: bool,
                   latency_s: float, partitions: int) -> list[dict]:
    with EmbeddedBroker(log_path=workdir / "latency-broker.log") as broker:
        bootstrap = broker.bootstrap_servers
        create_topics(bootstrap, partitions, topics=(*TOPICS, "latency-floor"))
        proc = worker(bootstrap, registry, workdir, "latency", "all")
        try:
            warm = max(100.0, LOAD_LEVELS[0] * full_rate)
            send_at_rate(bootstrap, clicks(int(warm * 2), seed=30, users=users, interleave=interleave,
                                           id_prefix="w"), warm)
            curve = []
            for i, level in enumerate(LOAD_LEVELS):
                rate = max(100.0, level * full_rate)
                load = clicks(max(1000, int(rate * latency_s)), seed=31 + i, users=users, interleave=interleave,
                              id_prefix=f"l{i}-")
                floor = broker_floor(bootstrap, "latency-floor", load, rate, FETCH_WAIT_MS, MAX_RECORDS)
                since_ms = int(time.time() * 1000)
                send_at_rate(bootstrap, load, rate)
                reckon = asyncio.run(recommendation_latencies(bootstrap, since_ms, len(load)))
                curve.append({"load": level, "events_per_s": round(rate), "broker_floor": percentiles(floor),
                              "reckon": percentiles(reckon)})
            return curve
        finally:
            proc.stop()


def run(registry: Path, workdir: Path, events: int = 1_000_000, users: int = 500, interleave: bool = False,
        repeats: int = 3, min_seconds: float = 2.0, latency_s: float = 10.0, partitions: int = 4) -> dict:
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        bootstrap = broker.bootstrap_servers
        create_topics(bootstrap, partitions)
        asyncio.run(produce_backlog(bootstrap, "clicks", clicks(events, seed=21, users=users, interleave=interleave,
                                                                   id_prefix="b")))
        rates = _rates(registry, workdir, bootstrap, events, repeats, min_seconds)
    curve = _latency_curve(registry, workdir, rates["full_path_events_per_s"]["median"], users, interleave,
                           latency_s, partitions)
    half = curve[LOAD_LEVELS.index(0.5)]
    short = {path: s for path, s in rates["timed_seconds"].items() if s < min_seconds}
    return {
        "events": events, "partitions": partitions, "users": users, "interleaved": interleave,
        "repeats": repeats, **rates,
        "latency_load_events_per_s": half["events_per_s"],
        "latency_p50_ms": half["reckon"]["p50_ms"], "latency_p99_ms": half["reckon"]["p99_ms"],
        "latency_max_ms": half["reckon"]["max_ms"],
        "broker_floor_p50_ms": half["broker_floor"]["p50_ms"], "broker_floor_p99_ms": half["broker_floor"]["p99_ms"],
        "latency_p99_over_floor_ms": (round(half["reckon"]["p99_ms"] - half["broker_floor"]["p99_ms"], 2)
                                      if half["reckon"]["p99_ms"] is not None
                                      and half["broker_floor"]["p99_ms"] is not None else None),
        "latency_curve": curve,
        "warnings": [f"{path}: only {s} s of work timed (< {min_seconds}); use a larger --events"
                     for path, s in short.items()],
    }
