"""Event-to-recommendation latency against the broker's own floor, in the same run.

The floor: a plain aiokafka producer sends the same events at the same rate to a topic
of their own, and a plain aiokafka consumer in a child process (as the worker is) reads
them with the worker's fetch settings; its latency is receipt time minus the record's
producer timestamp. Reckon's latency is the recommendation's `latency_ms`: publish time
minus the producer timestamp of the earliest event it answers (a user's events in one batch
share one recommendation). Both loads come from the same
producer code with the same settings, so what the producer adds is in both.

    python -m reckon.bench.latency BOOTSTRAP TOPIC SECONDS FETCH_WAIT_MS MAX_RECORDS
        (the floor's consumer child: prints "ready", then {"latencies_ms": [...]})
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from reckon.streams.traffic.generator import Record
from reckon.streams.traffic.replay import produce


def percentiles(values: Sequence[float]) -> dict:
    """p50 / p99 / max in ms, and how many samples they rest on."""
    if len(values) < 2:
        return {"samples": len(values), "p50_ms": None, "p99_ms": None, "max_ms": None}
    cuts = statistics.quantiles(values, n=100, method="inclusive")   # never beyond the max
    return {"samples": len(values), "p50_ms": round(cuts[49], 2), "p99_ms": round(cuts[98], 2),
            "max_ms": round(max(values), 2)}


def send_at_rate(bootstrap: str, records: Sequence[Record], rate: float) -> None:
    # The load generator's own full collections (hundreds of ms over this process's
    # records) paused sending, and the catch-up burst made the p99: out of their way.
    gc.collect()
    gc.freeze()
    try:
        asyncio.run(produce(bootstrap, records, rate=rate))
    finally:
        gc.unfreeze()


def broker_floor(bootstrap: str, topic: str, records: Sequence[Record], rate: float,
                 fetch_wait_ms: int, max_records: int) -> list[float]:
    """Produce `records` to `topic` at `rate` while a child consumer reads them."""
    seconds = len(records) / rate + 5
    child = subprocess.Popen([sys.executable, "-m", "reckon.bench.latency", bootstrap, topic, str(seconds),
                              str(fetch_wait_ms), str(max_records)], stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "ready":     # assigned and positioned at the end
            raise RuntimeError(f"the floor's consumer did not start (exit {child.wait()})")
        send_at_rate(bootstrap, [Record(topic, r.key, r.value, True) for r in records], rate)
        out, _ = child.communicate(timeout=seconds + 60)
    finally:
        child.kill()
    return json.loads(out.strip().splitlines()[-1])["latencies_ms"]


async def recommendation_latencies(bootstrap: str, since_ms: int, expect: int, quiet_s: float = 3.0) -> list[float]:
    """`latency_ms` of the recommendations published since `since_ms`: `expect` of them at
    most, fewer when a user's events shared a batch, so reading also ends once none came for
    `quiet_s`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition("recommendations", p) for p in consumer.partitions_for_topic("recommendations") or ()]
        consumer.assign(parts)
        offsets = await consumer.offsets_for_times({tp: since_ms for tp in parts})
        for tp in parts:
            if offsets[tp] is None:
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, offsets[tp].offset)
        out: list[float] = []
        deadline = time.monotonic() + 60
        last_new = time.monotonic()
        while len(out) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            # Tansu seeks by time to a record batch's start: earlier records can come first.
            got = [json.loads(m.value)["latency_ms"] for msgs in batch.values() for m in msgs
                   if m.timestamp >= since_ms]
            out += got
            if got:
                last_new = time.monotonic()
            elif out and time.monotonic() - last_new >= quiet_s:
                break
        return out
    finally:
        await consumer.stop()


async def _consume(bootstrap: str, topic: str, seconds: float, fetch_wait_ms: int, max_records: int) -> list[float]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=fetch_wait_ms, max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        await consumer.seek_to_end()
        for tp in parts:
            await consumer.position(tp)
        start_ms = time.time() * 1000
        print("ready", flush=True)
        latencies: list[float] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=max_records)
            now_ms = time.time() * 1000
            # The end Tansu reports can be a record batch's start: an earlier load's tail may come first.
            latencies += [now_ms - m.timestamp for msgs in batch.values() for m in msgs if m.timestamp >= start_ms]
        return latencies
    finally:
        await consumer.stop()


if __name__ == "__main__":
    gc.freeze()
    found = asyncio.run(_consume(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    print(json.dumps({"latencies_ms": [round(v, 3) for v in found]}), flush=True)
