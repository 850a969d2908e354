"""`reckon chaos`: the long-form fault suite on the embedded stack.

Each scenario reports events sent, recommendations (total and distinct triggers), dead
letters, cost rows (total and distinct) and checks its invariants:
- kill9:   kill -9 the worker mid-replay, restart it on the same data dir; nothing lost,
           no cost row doubled.
- broker:  restart the embedded broker (memory only): the worker notices, says so, exits.
- fuzz:    N fuzzed events (hypothesis) through a real worker; every event accounted for.
ClickHouse unavailability is exercised by tests/streams/test_sink_faults.py against the
sink directly (an embedded store cannot be taken away from its owner mid-run).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.broker import EmbeddedBroker, create_topics
from streams.generator import Record, TrafficGenerator
from streams.replay import produce
from streams.stack import WorkerProcess, start_worker

READ_COSTS = """
import json, sys
from streams.clickhouse import connect
ch = connect(sys.argv[1])
n, distinct = ch.query("SELECT count(), uniqExact(event_id) FROM cost_events")[0]
print(json.dumps({"cost_rows": n, "cost_rows_distinct": distinct}))
"""


def _worker(bootstrap: str, registry: Path, data: Path, name: str) -> WorkerProcess:
    return start_worker(bootstrap, registry, data, name, log_name=f"{name}-{time.time():.0f}")


async def _read_all(bootstrap: str, topic: str) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning()
        out: list = []
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=500)
            got = [m for msgs in batch.values() for m in msgs]
            out += got
            idle = 0 if got else idle + 1
        return out
    finally:
        await consumer.stop()


def _wait_consumed(worker: WorkerProcess, n: int, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = worker.stats() or {}
        if stats.get("consumed", 0) >= n and stats.get("cost_events_sunk", 0) >= stats.get("cost_events_sent", 0):
            return stats
        time.sleep(0.5)
    raise TimeoutError(f"worker consumed {stats.get('consumed')} of {n}")


def _costs(dsn_dir: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", READ_COSTS, f"chdb://{dsn_dir}"], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _report(name: str, sent: int, valid_ids: set[str], bootstrap: str, extra: dict) -> dict:
    recs = [json.loads(m.value) for m in asyncio.run(_read_all(bootstrap, "recommendations"))]
    dlq = asyncio.run(_read_all(bootstrap, "events-dlq"))
    triggers = Counter(r["trigger_event_id"] for r in recs)
    lost = len(valid_ids - set(triggers))
    result = {"scenario": name, "events_sent": sent, "recommendations": len(recs),
              "recommended_events": len(triggers), "lost": lost,
              "redelivered": len(recs) - len(triggers), "dead_letters": len(dlq), **extra}
    result["ok"] = lost == 0 and extra.get("cost_rows") == extra.get("cost_rows_distinct") and extra.get("ok", True)
    return result


def kill9(registry: Path, workdir: Path, events: int) -> dict:
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        create_topics(broker.bootstrap_servers, 4)
        records = list(TrafficGenerator(seed=31, bad_fraction=0.02).records(events))
        data = workdir / "kill9"
        worker = _worker(broker.bootstrap_servers, registry, data, "w")
        sender = threading.Thread(target=lambda: asyncio.run(
            produce(broker.bootstrap_servers, records, rate=max(200, events / 20))))
        sender.start()
        time.sleep(5)
        worker.kill()
        worker = _worker(broker.bootstrap_servers, registry, data, "w")
        sender.join()
        stats = _wait_consumed(worker, 1)   # the restarted worker counts only what it re-read
        time.sleep(5)
        worker.stop()
        valid = {json.loads(r.value)["event_id"] for r in records if r.valid}
        return _report("kill9", len(records), valid, broker.bootstrap_servers,
                       {**_costs(data / "clickhouse"), "restarted_consumed": stats.get("consumed")})


def broker_restart(registry: Path, workdir: Path, events: int) -> dict:
    broker = EmbeddedBroker(log_path=workdir / "broker-a.log").start()
    create_topics(broker.bootstrap_servers, 4)
    worker = _worker(broker.bootstrap_servers, registry, workdir / "broker", "w")
    asyncio.run(produce(broker.bootstrap_servers, TrafficGenerator(seed=32).records(events)))
    _wait_consumed(worker, events)
    time.sleep(6)
    started = time.monotonic()
    broker.stop()
    again = EmbeddedBroker(port=broker.port, log_path=workdir / "broker-b.log").start()
    try:
        create_topics(again.bootstrap_servers, 4)
        while worker.proc.poll() is None and time.monotonic() - started < 120:
            time.sleep(0.5)
        detected = worker.proc.poll() is not None
        said = "lost its data" in worker.log_path.read_text(errors="replace")
        if not detected:
            worker.stop()
        return {"scenario": "broker", "events_sent": events, "detected": detected, "explained": said,
                "detect_seconds": round(time.monotonic() - started, 1), "ok": detected and said}
    finally:
        again.stop()


def fuzz(registry: Path, workdir: Path, events: int) -> dict:
    from hypothesis import strategies as st

    payloads = st.binary(max_size=200) | st.dictionaries(
        st.sampled_from(["event_id", "user_id", "item_id", "action", "ts", "query", "results"]),
        st.none() | st.integers() | st.floats() | st.text(max_size=20) | st.just(time.time()),
        max_size=7).map(lambda d: json.dumps(d, default=str).encode())
    records = [Record(t, b"fuzz", payloads.example(), False)
               for t in (["clicks", "searches"] * (events // 2 + 1))[:events]]
    with EmbeddedBroker(log_path=workdir / "broker-fuzz.log") as broker:
        create_topics(broker.bootstrap_servers, 4)
        worker = _worker(broker.bootstrap_servers, registry, workdir / "fuzz", "w")
        asyncio.run(produce(broker.bootstrap_servers, records))
        stats = _wait_consumed(worker, events)
        worker.stop()
        invalid = sum(v for k, v in stats.items() if k.startswith("invalid:"))
        accounted = stats.get("valid", 0) + stats.get("duplicate", 0) + invalid
        return {"scenario": "fuzz", "events_sent": events, "consumed": stats.get("consumed"),
                "valid": stats.get("valid", 0), "dead_letters": invalid,
                "recommendations": stats.get("recommendations", 0),
                "ok": accounted == events and stats.get("recommendations", 0) == stats.get("valid", 0)}


SCENARIOS = {"kill9": kill9, "broker": broker_restart, "fuzz": fuzz}
