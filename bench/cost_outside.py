"""Accounted quantities against the kernel's own count, taken from outside the worker.

A scoring worker (its own process, no sink in it) works through a backlog of live-shaped
traffic. Before and after, this process reads the worker's /proc/<pid>/task/*/stat (each
thread's utime + stime, in clock ticks) and comm (its name). The cost events the worker
published for that work sum its device and CPU seconds; the ratios compare them with:

- device seconds (CPU) vs the CPU of the threads named `reckon-onnx`, the scoring thread
  and ONNX Runtime's pool (reckon.models.serving.threads);
- CPU seconds vs the CPU of the threads that do batch work: the batch thread (`reckon-batch`)
  and the event loop's (the main thread, whose work, Faust, producing, offset commits,
  timers, pages, is not any batch's),
  the scoring threads and the consumer's fetch thread (its id from the worker's /stats);
  and vs the whole process, whose other threads are listed by name.

Clock ticks are 10 ms, so the backlog is sized for tens of CPU-seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from reckon.models.serving.threads import THREAD_NAME
from reckon.streams.kafka.broker import EmbeddedBroker, create_topics
from reckon.streams.traffic.generator import TrafficGenerator
from reckon.streams.traffic.replay import produce
from reckon.streams.worker.app import BATCH_THREAD
from reckon.streams.worker.stack import start_worker


def thread_times(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (name, CPU seconds) for every thread of a process, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:            # a thread that ended meanwhile
            continue
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def _grown(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
           pid: int, fetch: int) -> tuple[Counter, Counter]:
    """CPU seconds used between the snapshots: by the main and batch threads, the scoring threads, the
    fetch thread and the process; and the other threads' by thread name."""
    grown: Counter = Counter()
    others: Counter = Counter()
    for tid, (name, cpu) in after.items():
        used = cpu - before.get(tid, (name, 0.0))[1]
        grown["process"] += used
        if tid == pid or name == BATCH_THREAD:
            grown["batch"] += used
        elif name == THREAD_NAME:
            grown["scoring"] += used
        elif tid == fetch:
            grown["fetch"] += used
        else:
            others[name] += used
    return grown, others


async def _cost_events(bootstrap: str) -> list[dict]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition("cost-events", p) for p in consumer.partitions_for_topic("cost-events") or ()]
        consumer.assign(parts)
        await consumer.seek_to_beginning()
        out: list[dict] = []
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=500)
            got = [json.loads(m.value) for msgs in batch.values() for m in msgs]
            out += got
            idle = 0 if got else idle + 1
        return out
    finally:
        await consumer.stop()


def outside(registry: Path, root: Path, events: int = 60_000, users: int = 20_000, onnx_threads: int = 1) -> dict:
    with EmbeddedBroker(log_path=root / "broker-outside.log") as broker:
        create_topics(broker.bootstrap_servers, 4)
        records = list(TrafficGenerator(seed=41, users=users).records(events))
        worker = start_worker(broker.bootstrap_servers, registry, root / "outside", "outside",
                              RECKON_ROLE="scorer", RECKON_DEVICE="cpu", RECKON_ONNX_THREADS=str(onnx_threads))
        try:   # start_worker returned once the worker held its partitions
            pid, fetch = worker.proc.pid, int((worker.stats() or {}).get("fetch_thread", 0))
            before = thread_times(pid)
            asyncio.run(produce(broker.bootstrap_servers, records))
            deadline = time.monotonic() + 600
            while (worker.stats() or {}).get("consumed", 0) < events:
                if time.monotonic() > deadline:
                    raise TimeoutError("the worker did not consume the backlog")
                time.sleep(0.1)
            after = thread_times(pid)
            stats = worker.stats() or {}
        finally:
            worker.stop()
        batches = [e for e in asyncio.run(_cost_events(broker.bootstrap_servers)) if e["kind"] == "workload"]
    grown, others = _grown(before, after, pid, fetch)
    device = sum(e["usage"]["device_seconds"] for e in batches)
    cpu = sum(e["usage"]["cpu_seconds"] for e in batches)
    return {"events": events, "users": users, "onnx_threads": onnx_threads, "batches": len(batches),
            "recommendations": stats.get("recommendations"),
            "device_seconds_accounted": round(device, 3), "cpu_seconds_accounted": round(cpu, 3),
            "proc_scoring_threads_cpu_s": round(grown["scoring"], 3), "proc_loop_and_batch_threads_cpu_s": round(grown["batch"], 3),
            "proc_fetch_thread_cpu_s": round(grown["fetch"], 3), "proc_process_cpu_s": round(grown["process"], 3),
            "proc_other_threads_cpu_s": {name: round(used, 2) for name, used in others.most_common() if used >= 0.01},
            "device_over_scoring_threads": round(device / grown["scoring"], 4) if grown["scoring"] else None,
            "cpu_over_batch_threads": round(cpu / (grown["batch"] + grown["scoring"] + grown["fetch"]), 4),
            "cpu_over_process": round(cpu / grown["process"], 4)}
