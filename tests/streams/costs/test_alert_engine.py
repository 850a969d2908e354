"""Alerts over real ClickHouse rollups, delivered to `cost-alerts`, the table and a webhook."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
import zlib
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from reckon.streams.costs.alert_engine import AlertConfig, AlertEngine, deliver, recent_alerts
from reckon.streams.costs.alerts import Alert, BurnConfig, DetectorConfig
from reckon.streams.costs.idle import IntervalAccountant, Reserved
from reckon.streams.costs.meter import cost_event, group_key, new_groups
from reckon.streams.costs.pricing import PriceSheet, Usage
from reckon.streams.kafka.broker import create_topics
from reckon.streams.sink.consumer import SinkConsumer
from reckon.streams.sink.rows import write_events

from ..kafka_io import read_topic

pytestmark = pytest.mark.integration
SHEET = PriceSheet.load(env={})


def minute_cost(tenant: str, ts: float, wall: float, recs: int = 100) -> dict:
    """A workload cost event whose cost (CPU for half its wall time, RAM for all of it) is
    proportional to `wall`."""
    groups = new_groups()
    groups[group_key(tenant, "v1", "click")].events = recs
    groups[group_key(tenant, "v1", "click")].recommendations = recs
    usage = Usage(wall_seconds=wall, device_seconds=wall / 2, cpu_seconds=wall / 2)
    return cost_event(f"b-{uuid.uuid4().hex}", usage, groups, SHEET, "w-alerts", 2.0, ts=ts)


def baseline(tenant: str, end: datetime, minutes: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    start = end.replace(second=0, microsecond=0) - timedelta(minutes=minutes)
    return [minute_cost(tenant, (start + timedelta(minutes=m, seconds=20)).timestamp(), 2.0 * rng.gauss(1, 0.15))
            for m in range(minutes)]


def mine(alerts, tenant: str) -> list:
    return [a for a in alerts if a.dims.get("tenant") == tenant]


def test_a_5x_spike_alerts_within_seconds_of_its_data(broker, clickhouse) -> None:
    tenant = f"spike-{uuid.uuid4().hex[:8]}"
    topic = f"cost-events-{tenant}"
    create_topics(broker.bootstrap_servers, 4, topics=[topic])
    write_events(clickhouse, baseline(tenant, datetime.now(timezone.utc), 30))
    engine = AlertEngine(clickhouse, AlertConfig(detector=DetectorConfig(window=60, warmup=15)))
    assert mine(engine.evaluate(), tenant) == []                       # the baseline alone is quiet
    stats: Counter = Counter()
    posted: list[dict] = []

    def webhook(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(200)

    async def run() -> tuple[float, float]:
        sink = SinkConsumer(clickhouse, broker.bootstrap_servers, {topic: "cost_events"}, group_id=f"g-{tenant}",
                            batch_rows=500, flush_ms=200, stats=stats, session_timeout_ms=3_000)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await asyncio.gather(sink.start(), producer.start())
        client = httpx.AsyncClient(transport=httpx.MockTransport(webhook))
        try:
            produced_at = time.time()
            spike = minute_cost(tenant, produced_at, 10.0)                 # 5x the baseline's wall time
            await producer.send_and_wait(topic, json.dumps(spike).encode())
            while True:                                                # the worker's alert timer, at 1 s
                assert time.time() - produced_at < 60, "no alert within 60 s of the spike's data"
                found = mine(await asyncio.to_thread(engine.evaluate), tenant)
                if found:
                    async def send(key: bytes, value: dict) -> None:
                        await producer.send_and_wait("cost-alerts", json.dumps(value).encode(), key=key)
                    await deliver(found, send, stats, "http://alerts.example/hook", client)
                    return produced_at, time.time()
                await asyncio.sleep(1.0)
        finally:
            await client.aclose()
            await asyncio.gather(sink.stop(), producer.stop())

    produced_at, alerted_at = asyncio.run(run())
    assert alerted_at - produced_at < 60
    wire = [json.loads(m.value) for m in read_topic(broker.bootstrap_servers, "cost-alerts", 1, timeout_s=10)]
    ours = [a for a in wire if a["dims"].get("tenant") == tenant]
    assert {a["metric"] for a in ours} == {"workload_cost_usd", "workload_cost_per_1k_usd"}
    assert all(a["kind"] == "anomaly" and a["severity"] == "critical" for a in ours)
    assert all(a["observed"] > 4 * a["expected"] for a in ours)
    assert {p["alert_id"] for p in posted} == {a["alert_id"] for a in ours}
    stored = [a for a in recent_alerts(clickhouse, datetime.now(timezone.utc) - timedelta(minutes=5), 500)
              if a["tenant"] == tenant]
    assert {a["alert_id"] for a in stored} == {a["alert_id"] for a in ours}
    assert mine(engine.evaluate(), tenant) == []                       # raised once, not every tick
    assert mine(AlertEngine(clickhouse, engine.config).evaluate(), tenant) == []   # nor after a restart


def test_a_steady_noisy_day_in_clickhouse_raises_nothing(clickhouse) -> None:
    tenant = f"steady-{uuid.uuid4().hex[:8]}"
    day_end = (datetime.now(timezone.utc) - timedelta(days=2)).replace(second=0, microsecond=0)
    write_events(clickhouse, baseline(tenant, day_end, 1440, seed=5))
    engine = AlertEngine(clickhouse, AlertConfig())
    raised = []
    for minute in range(1440, 0, -1):            # the alert timer at every minute of that day
        raised += mine(engine.evaluate(day_end - timedelta(minutes=minute, seconds=-40)), tenant)
    assert raised == []


def test_budget_burn_over_short_and_long_windows(clickhouse) -> None:
    """A tenant's burn counts its attributed cost: its workload and, as the only tenant with
    workload in a window of its own, all of that window's idle and shared cost."""
    tenant = f"budget-{uuid.uuid4().hex[:8]}"
    now = (datetime.now(timezone.utc) - timedelta(days=7, minutes=zlib.crc32(tenant.encode()) % 5000)).replace(
        second=30, microsecond=0)
    events = baseline(tenant, now, 60)
    accountant = IntervalAccountant(SHEET, Reserved(vcpus=1, ram_gb=2), f"w-{tenant}", "cpu", interval_s=10,
                                    started_at=(now - timedelta(minutes=30)).timestamp())
    interval = accountant.close_all(now=(now - timedelta(minutes=30)).timestamp() + 1)   # 1 s of idle and shared
    write_events(clickhouse, events + interval)
    hourly = sum((Decimal(e["cost"]["total"]) for e in events + interval), Decimal(0))
    burn = BurnConfig(short_minutes=5, long_minutes=60, warning=2, critical=10)
    generous = AlertEngine(clickhouse, AlertConfig(burn=burn, daily_budget_usd=((tenant, hourly * 24 * 2),)))
    assert mine(generous.evaluate(now), tenant) == []                   # spending half the budget's pace
    tight = AlertEngine(clickhouse, AlertConfig(burn=burn, daily_budget_usd=((tenant, hourly * 24 / 40),)))
    (alert,) = mine(tight.evaluate(now), tenant)                        # 40x the pace over the hour
    assert (alert.kind, alert.metric, alert.severity, alert.window) == ("budget", "burn_rate", "critical", "5m/60m")
    assert alert.observed == pytest.approx(float(hourly), rel=0.05)     # workload + the idle and shared
    assert alert.expected == pytest.approx(float(hourly) / 40, rel=1e-6)
    everything = AlertEngine(clickhouse, AlertConfig(burn=burn, daily_budget_usd=(("*", Decimal("1e-6")),)))
    assert [a.severity for a in everything.evaluate(now) if a.dims == {"tenant": "*"}] == ["critical"]


@pytest.mark.parametrize("failure", ["status", "connect"])
def test_a_failing_webhook_is_logged_without_its_secret_path(caplog, failure: str) -> None:
    """Chat webhooks carry their token in the path; httpx's errors repeat the whole URL."""
    url = "https://hooks.chat.example/services/T0/B0/s3cr3tpath"

    def webhook(request: httpx.Request) -> httpx.Response:
        if failure == "connect":
            raise httpx.ConnectError(f"cannot connect to {request.url}")
        return httpx.Response(404)

    alert = Alert("anomaly", "workload_cost_usd", {"tenant": "t"}, 5.0, 1.0, "critical", "1m", time.time(),
                  time.time())
    stats: Counter = Counter()

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(webhook)) as client:
            async def send(key: bytes, value: dict) -> None:
                pass
            await deliver([alert], send, stats, url, client)

    with caplog.at_level(logging.WARNING, logger="reckon.streams.costs.alert_engine"):
        asyncio.run(run())
    assert stats["alert_webhook_failed"] == 1
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "https://hooks.chat.example/***" in said and "s3cr3t" not in said, said
