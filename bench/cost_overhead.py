"""What cost accounting costs, and how fast and fresh it is. Every ratio is within one run.

1. overhead: the same batch set through BatchProcessor with accounting (meter, state
   bytes, cost event, interval observe, the sink's row building) and without it (those
   replaced by no-ops), alternating rounds; the fraction of throughput accounting takes;
2. sink: rows/s into chdb through `reckon.streams.sink.rows.write` (dedup lookup + insert) for cost
   rows and click rows, and end to end through the SinkConsumer from the embedded broker;
3. freshness: a worker under steady load; probe events with a tenant of their own are
   produced one by one and `GET /costs?tenant=...` polled until the probe's recommendation
   shows in the per-minute rollup: produced -> visible, p50 / p95 / max.

    reckon bench costs --json            # all three
    reckon bench costs --only overhead   # one part
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any

from reckon.streams.traffic.generator import Record, TrafficGenerator


def _registry() -> Path:
    from reckon.models.training.bootstrap import ensure_model
    from reckon.streams.core.settings import load_settings

    registry = load_settings().registry_dir.resolve()
    ensure_model(registry, islice(TrafficGenerator(seed=99).sessions(), 20_000))
    return registry


# 1. overhead ------------------------------------------------------------------------------

class _NullMeter:
    """BatchMeter's interface, measuring nothing."""

    def __init__(self, device: str) -> None:
        self.device_seconds = 0.0
        self.bytes_in = 0
        self.bytes_out = 0

    def usage(self, state_bytes: int, clickhouse_bytes: int = 0) -> None:
        return None


class _JsonWithoutStateBytes:
    """json for the processor, except the state-size measurement (only the cost event uses it)."""

    def __init__(self) -> None:
        import json as real

        self._real = real

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if isinstance(obj, dict) and "seen" in obj:      # a user state being sized
            return ""
        return self._real.dumps(obj, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def overhead(registry: Path, events: int = 20_000, batch: int = 256) -> dict:
    """Two processors in lockstep over the same batches, one with accounting and one without,
    alternating which goes first: both see the same inputs and grow the same state, and load
    from elsewhere on the machine lands on both sides alike. The accounting parts are also
    timed on their own, batch by batch."""
    import reckon.streams.pipeline.processor as proc
    from reckon.models.core.registry import Registry
    from reckon.models.serving.scorer import Scorer
    from reckon.streams.core.settings import Settings
    from reckon.streams.costs.idle import IntervalAccountant, Reserved
    from reckon.streams.costs.meter import cost_event
    from reckon.streams.costs.pricing import PriceSheet
    from reckon.streams.pipeline.processor import BatchProcessor, runs_of
    from reckon.streams.sink.rows import rows_from_event

    settings = Settings(device="cpu")
    scorer = Scorer.load(Registry(registry).current(), device="cpu")
    sheet = PriceSheet.load()
    records = list(TrafficGenerator(seed=7).records(events))
    batches = [runs_of(records[i:i + batch]) for i in range(0, len(records), batch)]
    sides = {"with": (BatchProcessor(settings, sheet, lambda user: scorer, ram_gb=2.0), {}),
             "without": (BatchProcessor(settings, sheet, lambda user: scorer, ram_gb=2.0), {})}
    accountant = IntervalAccountant(sheet, Reserved(2, 2), "bench", "cpu", 10.0)
    saved = proc.BatchMeter, proc.cost_event, proc.json
    spent = {"with": 0.0, "without": 0.0, "accounting_parts": 0.0}

    def run(side: str, chunk: list) -> None:
        processor, states = sides[side]
        if side == "without":
            proc.BatchMeter, proc.cost_event, proc.json = _NullMeter, lambda *a, **k: None, _JsonWithoutStateBytes()
        try:
            started = time.perf_counter()
            out = processor.process(chunk, lambda user, partition: states.get(user), "cpu")
            if side == "with" and out.cost_event is not None:
                accountant.observe(out.cost_event)
                rows_from_event(json.loads(json.dumps(out.cost_event)))   # the wire and the sink's side
            spent[side] += time.perf_counter() - started
        finally:
            proc.BatchMeter, proc.cost_event, proc.json = saved
        states.update(out.states)
        if side == "with" and out.cost_event is not None:              # the same parts, timed alone
            started = time.perf_counter()
            sized = sum(len(json.dumps(s)) for s in out.states.values())
            event = cost_event("b-x", proc.BatchMeter("cpu").usage(sized), _groups(out.cost_event), sheet,
                               "bench", 2.0)
            accountant.observe(event)
            rows_from_event(json.loads(json.dumps(event)))
            spent["accounting_parts"] += time.perf_counter() - started

    for i, chunk in enumerate(batches):
        for side in (("with", "without") if i % 2 else ("without", "with")):
            run(side, chunk)
    with_, without = len(records) / spent["with"], len(records) / spent["without"]
    return {"events": len(records), "batch": batch,
            "events_per_s_with_accounting": round(with_), "events_per_s_without": round(without),
            "accounting_share_of_throughput": round(1 - with_ / without, 4),
            "accounting_parts_share_of_batch_time": round(spent["accounting_parts"] / spent["with"], 4),
            "accounting_us_per_batch": round(spent["accounting_parts"] / len(batches) * 1e6)}


def _groups(event: dict) -> dict:
    """A batch's groups back from its cost event, to re-run cost_event on the same shape."""
    from reckon.streams.costs.meter import Group, group_key

    return {group_key(line["tenant"], line["model_version"], line["event_type"]):
            Group(line["events"], line["recommendations"], list(line["latencies_ms"])) for line in event["lines"]}


# 2. sink ------------------------------------------------------------------------------------

def _cost_events(n: int, tenant: str) -> list[dict]:
    from reckon.streams.costs.meter import cost_event, group_key, new_groups
    from reckon.streams.costs.pricing import PriceSheet, Usage

    sheet = PriceSheet.load()
    out = []
    for i in range(n):
        groups = new_groups()
        for version in ("v1", "v2"):
            groups[group_key(tenant, version, "click")].events = 100
            groups[group_key(tenant, version, "click")].recommendations = 100
            groups[group_key(tenant, version, "click")].latencies_ms = [5.0] * 100
        usage = Usage(wall_seconds=0.05, device_seconds=0.02, cpu_seconds=0.05, bytes_in=50_000, bytes_out=80_000)
        out.append(cost_event(f"b-{uuid.uuid4().hex}", usage, groups, sheet, "bench", 2.0, ts=time.time() - i * 0.05))
    return out


def sink(root: Path, events: int = 4000, clicks: int = 50_000) -> dict:
    from reckon.streams.clickhouse.client import connect, disconnect
    from reckon.streams.clickhouse.migrations import migrate
    from reckon.streams.kafka.broker import EmbeddedBroker, create_topics
    from reckon.streams.sink.consumer import SinkConsumer
    from reckon.streams.sink.rows import Rows, rows_from_event, rows_from_message, write

    dsn = f"chdb://{root / 'sink-store'}"
    ch = connect(dsn)
    migrate(ch)
    try:
        rows = [r for e in _cost_events(events, "bench-direct") for r in rows_from_event(e)]
        started = time.perf_counter()
        for i in range(0, len(rows), 500):
            batch = Rows()
            batch.add("cost_events", rows[i:i + 500])
            write(ch, batch)
        cost_rate = len(rows) / (time.perf_counter() - started)
        now = time.time()
        raw = [json.dumps({"event_id": f"c{i}", "user_id": f"u{i % 500}", "item_id": f"i{i % 2000}",
                           "action": "view", "ts": now - i * 0.001, "tenant": "bench"}).encode() for i in range(clicks)]
        click_rows = [r for v in raw for r in rows_from_message("clicks_log", v)]
        started = time.perf_counter()
        for i in range(0, len(click_rows), 2000):
            batch = Rows()
            batch.add("clicks_log", click_rows[i:i + 2000])
            write(ch, batch)
        click_rate = len(click_rows) / (time.perf_counter() - started)

        stats: Counter = Counter()
        wire = _cost_events(events, "bench-kafka")

        async def through_kafka() -> float:
            from aiokafka import AIOKafkaProducer

            with EmbeddedBroker() as broker:
                create_topics(broker.bootstrap_servers, 4)
                producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=5)
                await producer.start()
                for event in wire:
                    await producer.send("cost-events", json.dumps(event).encode(), key=b"bench")
                await producer.stop()
                consumer = SinkConsumer(ch, broker.bootstrap_servers, {"cost-events": "cost_events"},
                                        group_id="bench", batch_rows=500, flush_ms=500, stats=stats)
                await consumer.start()
                while not stats["cost_events_sunk"]:
                    await asyncio.sleep(0.01)
                started = time.perf_counter()                  # from the first flush: group join excluded
                first = stats["cost_rows_written"]
                while stats["cost_events_sunk"] < len(wire):
                    await asyncio.sleep(0.01)
                elapsed = time.perf_counter() - started
                await consumer.stop()
                return (stats["cost_rows_written"] - first) / elapsed

        kafka_rate = asyncio.run(through_kafka())
    finally:
        disconnect(dsn)
    return {"cost_rows_per_s_write": round(cost_rate), "click_rows_per_s_write": round(click_rate),
            "cost_rows_per_s_kafka_to_clickhouse": round(kafka_rate), "cost_rows": len(rows),
            "click_rows": len(click_rows)}


# 3. freshness -------------------------------------------------------------------------------

def freshness(registry: Path, root: Path, probes: int = 15, load_per_s: int = 400) -> dict:
    import httpx

    from reckon.streams.kafka.broker import EmbeddedBroker, create_topics, free_port
    from reckon.streams.traffic.replay import produce, produce_in_background
    from reckon.streams.worker.stack import WorkerProcess

    with EmbeddedBroker() as broker:
        create_topics(broker.bootstrap_servers, 4)
        port = free_port()
        env = {"RECKON_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "RECKON_DATA_DIR": str(root / "fresh"),
               "RECKON_MODEL_REGISTRY": str(registry), "RECKON_WEB_PORT": str(port),
               "RECKON_WORKER_NAME": "fresh", "RECKON_DEVICE": "cpu"}
        (root / "fresh").mkdir(parents=True, exist_ok=True)
        worker = WorkerProcess(env, root / "fresh" / "worker.log", port)
        try:
            worker.wait_ready()
            background = produce_in_background(broker.bootstrap_servers,
                                               TrafficGenerator(seed=3).records(load_per_s * 45), rate=load_per_s)
            time.sleep(8)                                          # both groups joined, load steady
            latencies = []
            for i in range(probes):
                tenant = f"probe-{uuid.uuid4().hex[:8]}"
                doc = {"event_id": f"{tenant}-e", "user_id": f"{tenant}-u", "item_id": "1", "action": "view",
                       "ts": time.time(), "tenant": tenant}
                produced = time.time()
                asyncio.run(produce(broker.bootstrap_servers,
                                    [Record("clicks", doc["user_id"].encode(), json.dumps(doc).encode(), True)]))
                while time.time() - produced < 30:
                    report = httpx.get(f"http://127.0.0.1:{port}/costs",
                                       params={"hours": "0.1", "tenant": tenant, "summary": "1"}, timeout=10).json()
                    if report["totals"]["recommendations"]:
                        latencies.append(time.time() - produced)
                        break
                    time.sleep(0.05)
            stats = worker.stats() or {}
            background.join(timeout=60)                             # the load ends before the broker does
        finally:
            worker.stop()
    latencies.sort()
    return {"probes": len(latencies), "load_events_per_s": load_per_s,
            "freshness_p50_s": round(statistics.median(latencies), 3),
            "freshness_p95_s": round(latencies[max(0, int(len(latencies) * 0.95) - 1)], 3),
            "freshness_max_s": round(latencies[-1], 3), "worker_sink_freshness_ms": stats.get("sink_freshness_ms")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("overhead", "sink", "freshness"))
    parser.add_argument("--events", type=int, default=20_000, help="events for the overhead part")
    parser.add_argument("--json", action="store_true", help="one JSON line")
    args = parser.parse_args(argv)
    registry = _registry()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="reckon-cost-bench-") as tmp:
        if args.only in (None, "overhead"):
            result["overhead"] = overhead(registry, events=args.events)
        if args.only in (None, "sink"):
            result["sink"] = sink(Path(tmp))
        if args.only in (None, "freshness"):
            result["freshness"] = freshness(registry, Path(tmp))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
