"""Read rates on one backlog, timed so that they hold still between runs.

Every rate counts the events after a path's first batch over the time from that batch's
end (the first fetch of a cold consumer also pays for connections and metadata), and
is timed over at least `min_seconds` of work: a raw read re-reads the backlog until it
has, a worker's backlog is sized by the caller. Each figure is measured `repeats` times
and reported as min / median / max; ratios pair each worker run with the raw reads just
before and after it, so a machine that slows down for a while slows both sides.
"""

from __future__ import annotations

import gc
import json
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from reckon.streams.kafka.record_batches import send_keyed
from reckon.streams.traffic.generator import Record, TrafficGenerator
from reckon.streams.worker.app import GC_THRESHOLDS
from reckon.streams.worker.stack import WorkerProcess, start_worker


def spread(values: Sequence[float], digits: int = 0) -> dict:
    """min / median / max of repeated measurements (rounded)."""
    return {"min": round(min(values), digits), "median": round(statistics.median(values), digits),
            "max": round(max(values), digits)}


def clicks(n: int, seed: int, users: int = 500, interleave: bool = False, id_prefix: str = "") -> list[Record]:
    """n click records of `users` users: sessions back to back, as a replayed log has them,
    or (`interleave`) each user's k-th event after every user's (k-1)-th, as live traffic
    spreads a user's events over many batches. `id_prefix` keeps event ids of loads with
    different seeds apart (the worker drops a repeated id as a duplicate)."""
    # Timestamps (~0.025 s apart) end before now: later ones would be dead-lettered as out
    # of range, and the rates would time the wrong work.
    gen = TrafficGenerator(users=users, seed=seed, search_fraction=0.0, start_ts=time.time() - 60 - 0.05 * n)
    out: list[Record] = []
    for event in gen.sessions():
        if "item_id" in event:
            event["event_id"] = id_prefix + event["event_id"]
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


async def produce_backlog(bootstrap: str, topic: str, records: Sequence[Record], chunk: int = 20_000) -> None:
    """The backlog as whole record batches (a send() per record would take longer than the
    reads it feeds), partitioned by key as send() would."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, max_batch_size=1024 * 1024,
                                max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        for start in range(0, len(records), chunk):
            await send_keyed(producer, topic, [(r.key, r.value) for r in records[start:start + chunk]])
        await producer.flush()
    finally:
        await producer.stop()


async def raw_read(bootstrap: str, topic: str, n: int, min_seconds: float) -> float:
    """A plain aiokafka getmany() loop over the backlog (bytes only, no decoding), re-read
    from the beginning until at least `min_seconds` of reading was timed, under the
    worker's collector settings (see `worker_gc`)."""
    with worker_gc():
        return await _raw_read(bootstrap, topic, n, min_seconds)


@contextmanager
def worker_gc() -> Iterator[None]:
    """The collector as the worker runs it (streams/worker/app.py: the long-lived heap frozen,
    young collections rare at GC_THRESHOLDS), for code timed against the worker. At Python's default
    thresholds the raw reader's own collections, over the records aiokafka allocates, made
    it 25-50 % slower than with none (measured on a 200k live-shaped backlog), so the
    denominator of every ratio moved with them; the worker was measured without them."""
    gc.collect()
    gc.freeze()
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


async def _raw_read(bootstrap: str, topic: str, n: int, min_seconds: float) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_bytes=16 * 1024 * 1024,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        counted, started = 0, 0.0
        while True:
            await consumer.seek_to_beginning()
            got = 0
            while got < n:
                batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                size = sum(len(v) for v in batch.values())
                got += size
                if started:
                    counted += size
                elif size:
                    started = time.perf_counter()
            if counted and time.perf_counter() - started >= min_seconds:
                return counted / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def faust_floor(bootstrap: str, topic: str, n: int, datadir: Path, min_seconds: float) -> dict:
    """Faust's consumer with Reckon's batch transport and an empty handler, re-reading the
    backlog until `min_seconds` were timed (bench/faust_floor.py)."""
    out = subprocess.run([sys.executable, "-m", "reckon.bench.faust_floor", bootstrap, topic, str(n), str(datadir),
                          str(min_seconds)],
                         capture_output=True, text=True, timeout=600)
    found = re.search(r'\{"events_per_s": [^}]*\}', out.stdout)   # Faust may print escapes too
    if found is None:
        raise RuntimeError(f"faust floor run failed (exit {out.returncode}): {out.stderr[-2000:]}")
    return json.loads(found.group())


def worker(bootstrap: str, registry: Path, root: Path, name: str, trigger: str) -> WorkerProcess:
    return start_worker(bootstrap, registry, root / name, name, log_name="worker",
                        RECKON_APP_ID=f"bench-{name}", RECKON_TRIGGER=trigger,
                        RECKON_ROLE="scorer", RECKON_DEVICE="cpu")


def worker_rate(proc: WorkerProcess, n: int, min_seconds: float | None = None,
                timeout_s: float = 900) -> tuple[float, float, dict]:
    """(events/s, seconds timed, stats) of a worker reading the backlog: until it consumed
    all `n` events, or (with `min_seconds`) until that much of its work was timed."""
    deadline = time.monotonic() + timeout_s
    stats: dict = {}
    while time.monotonic() < deadline:
        stats = proc.stats() or {}
        consumed = stats.get("consumed", 0)
        span = stats.get("last_batch_at", 0.0) - stats.get("first_batch_at", 0.0)
        if consumed >= n or (min_seconds is not None and span >= min_seconds):
            if stats.get("valid", 0) != consumed:
                raise RuntimeError(f"worker took {stats.get('valid', 0)} of {consumed} events as valid")
            if span <= 0:
                raise RuntimeError(f"the backlog of {n} events fit in the worker's first batch: nothing to time; "
                                   "use a larger --events")
            return (consumed - stats["first_batch_consumed"]) / span, span, stats
        time.sleep(0.1)
    raise TimeoutError(f"worker consumed {stats.get('consumed')} of {n} in {timeout_s}s")
