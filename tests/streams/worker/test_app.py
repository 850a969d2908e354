"""The worker on the real embedded stack: every event accounted for, durable state."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import httpx

from reckon.streams.traffic.generator import BAD_KINDS, TrafficGenerator
from reckon.streams.traffic.replay import produce

from ..conftest import wait_for
from ..kafka_io import click, read_topic, unanswered_users


def _processed(worker, n: int):
    def check():
        stats = worker.stats()
        return stats if stats and stats.get("consumed", 0) >= n else None
    return check


def test_every_event_accounted_for(workers, fresh_broker) -> None:
    worker = workers.start("w1")
    records = list(TrafficGenerator(bad_fraction=0.12, seed=3).records(700))
    retries = [r for r in records if r.valid][:25]          # a producer's retries
    asyncio.run(produce(fresh_broker.bootstrap_servers, records + retries))
    total = len(records) + len(retries)
    stats = wait_for(_processed(worker, total), what="all events consumed")

    valid = sum(r.valid for r in records)
    expected_reasons = Counter(r.reason for r in records if not r.valid)
    assert set(expected_reasons) == set(BAD_KINDS)          # every dead-letter reason exercised
    assert stats["consumed"] == total
    assert stats["valid"] + stats["duplicate"] + sum(expected_reasons.values()) == total
    assert stats["duplicate"] == len(retries)
    assert {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("invalid:")} == expected_reasons

    metrics = httpx.get(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5).text
    for reason, count in expected_reasons.items():
        assert f'reckon_dead_letters_total{{reason="{reason}",worker="w1"}} {float(count)}' in metrics

    dlq = read_topic(fresh_broker.bootstrap_servers, "events-dlq", sum(expected_reasons.values()))
    assert Counter(dict(m.headers)["reason"].decode() for m in dlq) == expected_reasons
    assert {m.value for m in dlq} == {r.value for r in records if not r.valid}   # raw bytes kept

    # One recommendation per user per batch (a user's events in one batch share one output):
    # together they answer every valid event exactly once.
    recs = read_topic(fresh_broker.bootstrap_servers, "recommendations", stats["recommendations"])
    docs = [json.loads(m.value) for m in recs]
    assert len(docs) == stats["recommendations"] < valid
    assert sum(d["triggers"] for d in docs) == valid
    valid_events = [json.loads(r.value) for r in records if r.valid]
    assert Counter(d["trigger_event_id"] for d in docs) <= Counter(e["event_id"] for e in valid_events)
    assert unanswered_users(docs, valid_events) == set()
    assert all(d["items"] and len(d["items"]) == len(d["scores"]) <= 10 for d in docs)
    assert all(d["model_version"] == stats["model_version"] and d["latency_ms"] >= 0 for d in docs)
    assert stats["cost_events_sent"] >= 1
    wait_for(lambda: (worker.stats() or {}).get("cost_events_sunk", 0) >= stats["cost_events_sent"],
             what="cost events in ClickHouse")


def _state(worker, user: str, tenant: str = "acme") -> dict | None:
    response = httpx.get(f"http://127.0.0.1:{worker.web_port}/state/{tenant}/{user}", timeout=2)
    return response.json()["state"] if response.status_code == 200 else None


def test_state_survives_restart_on_an_empty_data_dir(workers, fresh_broker, tmp_path) -> None:
    first = workers.start("first", data_dir=tmp_path / "a")
    events = [click(f"r{i}", "u-restart", f"i{i}") for i in range(1, 6)]
    asyncio.run(produce(fresh_broker.bootstrap_servers, events))
    wait_for(_processed(first, 5), what="first worker processed")
    before = wait_for(lambda: _state(first, "u-restart"), what="state")
    assert before["items"] == ["i1", "i2", "i3", "i4", "i5"]
    first.stop()

    second = workers.start("second", data_dir=tmp_path / "b")   # nothing on disk: changelog only
    after = wait_for(lambda: _state(second, "u-restart"), what="state recovered from the changelog")
    assert after == before
    asyncio.run(produce(fresh_broker.bootstrap_servers, events[:3]))   # redelivered after restart
    stats = wait_for(_processed(second, 3), what="second worker processed")
    assert stats.get("duplicate") == 3 and stats.get("recommendations", 0) == 0


def test_a_state_stored_in_the_previous_format_is_read_and_kept(workers, fresh_broker, tmp_path) -> None:
    """A changelog written before the user table (version 1: the state as JSON) restores on a
    worker with an empty data dir: the state reads as it was, its seen ids still drop their
    redeliveries, and the state changes on from there (written back in the new format)."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    bootstrap = fresh_broker.bootstrap_servers
    first = workers.start("first", data_dir=tmp_path / "a")       # creates the changelog topic
    asyncio.run(produce(bootstrap, [click("warm-1", "u-warm", "i0")]))
    wait_for(_processed(first, 1), what="first worker processed")
    first.stop()
    partition = DefaultPartitioner()(b"u-old", [0, 1, 2, 3], [0, 1, 2, 3])   # its events' partition
    old = {"items": ["i7", "i8"], "terms": ["lamp"], "seen": ["old-1", "old-2"], "bought": ["i7"],
           "clicks": 2, "searches": 1, "last_seen": time.time() - 60, "last_rec_ts": 0.0}

    async def send_old() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait("reckon-user-state-changelog", json.dumps(old).encode(),
                                         key="acme\x1fu-old".encode(), partition=partition)
        finally:
            await producer.stop()
    asyncio.run(send_old())

    second = workers.start("second", data_dir=tmp_path / "b")     # nothing on disk: changelog only
    state = wait_for(lambda: _state(second, "u-old"), what="the old state recovered")
    assert (state["items"], state["terms"], state["bought"], state["clicks"]) == (["i7", "i8"], ["lamp"], ["i7"], 2)
    assert len(state["seen"]) == 2                                  # as hashes now
    asyncio.run(produce(bootstrap, [click("old-2", "u-old", "i9"), click("new-1", "u-old", "i10")]))
    stats = wait_for(_processed(second, 2), what="second worker processed")
    assert stats.get("duplicate") == 1
    assert wait_for(lambda: (_state(second, "u-old") or {}).get("items") == ["i7", "i8", "i10"],
                    what="the new click folded in")
