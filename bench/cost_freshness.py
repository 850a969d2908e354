"""How soon a recommendation's cost shows in ClickHouse's rollups, under steady load.

A worker (scoring and sink) takes background traffic; probe events, each with a tenant of
its own, are produced one by one and `GET /costs?tenant=...` polled until the probe's
recommendation shows in the per-minute rollup: produced -> visible, p50 / p95 / max.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path

import httpx

from reckon.streams.kafka.broker import EmbeddedBroker, create_topics, free_port
from reckon.streams.traffic.generator import Record, TrafficGenerator
from reckon.streams.traffic.replay import produce, produce_in_background
from reckon.streams.worker.stack import WorkerProcess


def freshness(registry: Path, root: Path, probes: int = 15, load_per_s: int = 400) -> dict:
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
