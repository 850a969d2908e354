"""Stream benchmark: raw aiokafka read rate vs Reckon's worker, on one topic, in one run.

1. produce N generated click events to `clicks` (backlog);
2. raw: an aiokafka getmany() loop reads the backlog (bytes only, no decoding), five
   times (three first, two after the ingest worker); the ratios use the median read;
   floor: Faust's consumer with Reckon's batch transport and an empty handler, same backlog;
3. ingest: a worker (trigger=none) validates and folds every event into the RocksDB Table
   with its changelog, reading the same backlog under its own consumer group;
4. full: a worker that also scores and publishes (trigger=all), same backlog, own group;
5. latency: the full worker keeps running while events are produced at half its measured
   rate for `latency_s` seconds (10 by default: at high rates a fixed count of events
   lasted a fraction of a second, and one commit made the p99); p50/p99/max of
   event-to-recommendation latency (producer timestamp -> recommendation).
Ratios are within this run, so a noisy shared machine affects both sides alike.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from reckon.streams.kafka.broker import EmbeddedBroker, create_topics
from reckon.streams.traffic.generator import Record, TrafficGenerator
from reckon.streams.traffic.replay import produce
from reckon.streams.worker.stack import WorkerProcess, start_worker


def _clicks(n: int, seed: int, users: int = 500, interleave: bool = False) -> list[Record]:
    """n click records of `users` users: sessions back to back, as a replayed log has them,
    or (`interleave`) each user's k-th event after every user's (k-1)-th, as live traffic
    spreads a user's events over many batches."""
    # Timestamps end before now (~0.025 s apart): later ones would be dead-lettered as
    # out of range, and the rates would time the wrong work.
    gen = TrafficGenerator(users=users, seed=seed, search_fraction=0.0, start_ts=time.time() - 60 - 0.05 * n)
    out: list[Record] = []
    for event in gen.sessions():
        if "item_id" in event:
            out.append(Record("clicks", event["user_id"].encode(), json.dumps(event).encode(), True))
            if len(out) == n:
                break
    if interleave:
        rank: Counter = Counter()
        order = []
        for record in out:
            order.append(rank[record.key])
            rank[record.key] += 1
        out = [record for _, record in sorted(zip(order, out), key=lambda pair: pair[0])]
    return out


async def _raw_read(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_bytes=16 * 1024 * 1024,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        await consumer.seek_to_beginning()
        # Timed as the workers are: the events after the first batch, from its end.
        got = first = 0
        started = 0.0
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            got += sum(len(v) for v in batch.values())
            if not started and got:
                started, first = time.perf_counter(), got
        return (got - first) / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def _faust_floor(bootstrap: str, topic: str, n: int, datadir: Path) -> float:
    """Faust's consumer with Reckon's batch transport and an empty handler (bench/faust_floor.py)."""
    out = subprocess.run([sys.executable, "-m", "reckon.bench.faust_floor", bootstrap, topic, str(n), str(datadir)],
                         capture_output=True, text=True, timeout=300)
    found = re.search(r'\{"events_per_s": [0-9.e+]+\}', out.stdout)   # Faust may print escapes too
    if found is None:
        raise RuntimeError(f"faust floor run failed (exit {out.returncode}): {out.stderr[-2000:]}")
    return json.loads(found.group())["events_per_s"]


def _worker(bootstrap: str, registry: Path, root: Path, name: str, trigger: str) -> WorkerProcess:
    return start_worker(bootstrap, registry, root / name, name, log_name="worker",
                        RECKON_APP_ID=f"bench-{name}", RECKON_TRIGGER=trigger,
                        RECKON_ROLE="scorer", RECKON_DEVICE="cpu")


def _drain_rate(worker: WorkerProcess, n: int, timeout_s: float = 600) -> tuple[float, dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = worker.stats() or {}
        if stats.get("consumed", 0) >= n:
            if stats.get("valid", 0) != stats["consumed"]:
                raise RuntimeError(f"worker took {stats.get('valid', 0)} of {stats['consumed']} events as valid")
            # the events after the first batch, over the time from its end to the last one's
            span = stats["last_batch_at"] - stats["first_batch_at"]
            after = stats["consumed"] - stats["first_batch_consumed"]
            return (after / span if span > 0 else float("inf")), stats
        time.sleep(0.2)
    raise TimeoutError(f"worker consumed {stats.get('consumed')} of {n} in {timeout_s}s")


async def _latencies(bootstrap: str, since_ms: int, expect: int) -> list[float]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition("recommendations", p)
                 for p in consumer.partitions_for_topic("recommendations") or ()]
        consumer.assign(parts)
        offsets = await consumer.offsets_for_times({tp: since_ms for tp in parts})
        for tp in parts:
            if offsets[tp] is None:
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, offsets[tp].offset)
        out: list[float] = []
        deadline = time.monotonic() + 60
        while len(out) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            # Tansu seeks by time to a record batch's start: earlier records can come first.
            out += [json.loads(m.value)["latency_ms"] for msgs in batch.values() for m in msgs
                    if m.timestamp >= since_ms]
        return out
    finally:
        await consumer.stop()


def _pct(values: list[float], q: float) -> float:
    return round(statistics.quantiles(values, n=100)[int(q) - 1], 2) if len(values) > 1 else float("nan")


def run(registry: Path, workdir: Path, events: int = 50_000, latency_s: float = 10.0,
        partitions: int = 4, users: int = 500, interleave: bool = False) -> dict:
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        bootstrap = broker.bootstrap_servers
        create_topics(bootstrap, partitions)
        backlog = _clicks(events, seed=21, users=users, interleave=interleave)
        asyncio.run(produce(bootstrap, backlog))
        # A read of the backlog lasts a fraction of a second: five of them (three now, two
        # after the ingest worker), and the ratios divide by their median.
        raw_reads = [asyncio.run(_raw_read(bootstrap, "clicks", events)) for _ in range(3)]
        floor = _faust_floor(bootstrap, "clicks", events, workdir / "floor")

        ingest_worker = _worker(bootstrap, registry, workdir, "ingest", "none")
        ingest, _ = _drain_rate(ingest_worker, events)
        ingest_worker.stop()
        raw_reads += [asyncio.run(_raw_read(bootstrap, "clicks", events)) for _ in range(2)]
        raw = statistics.median(raw_reads)

        full_worker = _worker(bootstrap, registry, workdir, "full", "all")
        try:
            full, full_stats = _drain_rate(full_worker, events)
            since_ms = int(time.time() * 1000)
            rate = max(100.0, full / 2)
            latency_events = max(1000, int(rate * latency_s))
            load = _clicks(latency_events, seed=22, users=users, interleave=interleave)
            # The load generator's own full collections (hundreds of ms over this process's
            # records) paused sending, and the catch-up burst made the p99: out of their way.
            gc.collect()
            gc.freeze()
            try:
                asyncio.run(produce(bootstrap, load, rate=rate))
            finally:
                gc.unfreeze()
            latencies = asyncio.run(_latencies(bootstrap, since_ms, latency_events))
        finally:
            full_worker.stop()
    return {
        "events": events, "partitions": partitions, "users": users, "interleaved": interleave,
        "raw_aiokafka_events_per_s": round(raw),
        "raw_reads_events_per_s": [round(r) for r in raw_reads],
        "faust_empty_handler_events_per_s": round(floor), "faust_empty_over_raw": round(floor / raw, 4),
        "ingest_events_per_s": round(ingest),
        "full_path_events_per_s": round(full),
        # one model row per user per batch: recommendations over rows is what that saved
        "full_path_recommendations_per_scored_row": round(
            full_stats.get("recommendations", 0) / max(full_stats.get("scored_rows", 0), 1), 2),
        "ingest_over_raw": round(ingest / raw, 4), "full_over_raw": round(full / raw, 4),
        "latency_load_events_per_s": round(rate), "latency_samples": len(latencies),
        "latency_p50_ms": _pct(latencies, 50), "latency_p99_ms": _pct(latencies, 99),
        "latency_max_ms": round(max(latencies), 2) if latencies else float("nan"),
    }
