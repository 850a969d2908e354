"""The embedded Tansu broker: real Kafka protocol for aiokafka and kafka-python; no orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from reckon.streams.kafka.broker import TOPICS, EmbeddedBroker, create_topics


def test_topics_created_with_configured_partitions(broker: EmbeddedBroker) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(list(TOPICS))}
    finally:
        admin.close()
    assert described == {t: 4 for t in TOPICS}
    assert create_topics(broker.bootstrap_servers, 4) == []  # idempotent


def test_aiokafka_round_trip(broker: EmbeddedBroker) -> None:
    async def run() -> list[tuple[bytes, bytes]]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        try:
            for i in range(20):
                await producer.send_and_wait("t-aiokafka", f"v{i}".encode(), key=f"k{i % 3}".encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer("t-aiokafka", bootstrap_servers=broker.bootstrap_servers,
                                    auto_offset_reset="earliest", group_id="g-aio")
        await consumer.start()
        got: list[tuple[bytes, bytes]] = []
        try:
            deadline = time.monotonic() + 20
            while len(got) < 20 and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                got += [(m.key, m.value) for msgs in batch.values() for m in msgs]
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(run())
    assert sorted(v for _, v in got) == sorted(f"v{i}".encode() for i in range(20))


def test_kafka_python_round_trip(broker: EmbeddedBroker) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    for i in range(10):
        producer.send("t-kafka-python", key=b"user-1", value=f"m{i}".encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer("t-kafka-python", bootstrap_servers=broker.bootstrap_servers,
                             auto_offset_reset="earliest", group_id="g-kp", consumer_timeout_ms=30_000,
                             # Tansu: the group joins only after the rebalance timeout
                             max_poll_interval_ms=5000, session_timeout_ms=6000,
                             heartbeat_interval_ms=1000)
    values = []
    for message in consumer:
        values.append(message.value)
        if len(values) == 10:
            break
    consumer.close()
    assert values == [f"m{i}".encode() for i in range(10)]  # one key: one partition, in order


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead too
        return fh.read().split()[2] != "Z"


def test_stop_leaves_no_process() -> None:
    broker = EmbeddedBroker().start()
    pid = broker.pid
    assert pid and _alive(pid)
    broker.stop()
    assert not _alive(pid)


def test_broker_dies_with_a_killed_parent() -> None:
    code = ("from reckon.streams.kafka.broker import EmbeddedBroker; import time, sys; "
            "b = EmbeddedBroker().start(); print(b.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    assert _alive(pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
