"""Several workers, hot-swap, kill -9: on the real embedded stack."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx

from reckon.streams.traffic.generator import TrafficGenerator
from reckon.streams.traffic.replay import produce, produce_in_background

from ..conftest import registry_with_copy, wait_for
from ..kafka_io import read_topic, unanswered_users


def _consumed(*workers) -> int:
    return sum((w.stats() or {}).get("consumed", 0) for w in workers)


def _state(worker, user: tuple[str, str]) -> dict | None:
    tenant, user_id = user
    try:
        r = httpx.get(f"http://127.0.0.1:{worker.web_port}/state/{tenant}/{user_id}", timeout=2)
    except httpx.HTTPError:
        return None
    return r.json()["state"] if r.status_code == 200 else None


def test_promoted_version_takes_over_mid_replay(workers, fresh_broker, registry_dir, tmp_path) -> None:
    registry_path = tmp_path / "registry"
    registry, v1 = registry_with_copy(registry_dir, registry_path, "v2-test")
    v2 = "v2-test"

    workers.registry = registry_path
    worker = workers.start("swap")
    records = list(TrafficGenerator(seed=8).records(2000))
    # The worker joins its group a few seconds after it answers HTTP: the first 100 events
    # show it is consuming, then the rest arrive at 300/s and the promotion lands mid-way.
    asyncio.run(produce(fresh_broker.bootstrap_servers, records[:100]))
    wait_for(lambda: _consumed(worker) >= 100, what="worker consuming")
    sender = produce_in_background(fresh_broker.bootstrap_servers, records[100:], rate=300)
    wait_for(lambda: _consumed(worker) >= 400, what="replay under way")
    registry.promote(v2)
    sender.join()
    wait_for(lambda: _consumed(worker) >= len(records), what="replay consumed")

    stats = worker.stats() or {}
    recs = [json.loads(m.value) for m in read_topic(fresh_broker.bootstrap_servers, "recommendations",
                                                     stats["recommendations"])]
    events = [json.loads(r.value) for r in records]
    assert len(recs) == stats["recommendations"] and sum(r["triggers"] for r in recs) == len(records)
    assert Counter(r["trigger_event_id"] for r in recs) <= Counter(e["event_id"] for e in events)  # none twice
    assert unanswered_users(recs, events) == set()
    versions = [r["model_version"] for r in sorted(recs, key=lambda r: r["ts"])]
    assert set(versions) == {v1, v2}
    switch = versions.index(v2)
    assert all(v == v2 for v in versions[switch:])   # no flapping back after the swap


def test_two_workers_share_partitions_and_survive_a_kill(workers, fresh_broker) -> None:
    first = workers.start("first", RECKON_ROLE="all")
    second = workers.start("second", RECKON_ROLE="scorer")
    records = list(TrafficGenerator(seed=9, users=200).records(1200))
    asyncio.run(produce(fresh_broker.bootstrap_servers, records[:600]))
    wait_for(lambda: _consumed(first, second) >= 600, what="both workers consumed")
    assert (first.stats() or {}).get("consumed", 0) > 0 and (second.stats() or {}).get("consumed", 0) > 0

    users = sorted({(json.loads(r.value)["tenant"], json.loads(r.value)["user_id"]) for r in records[:600]
                    if r.valid})
    owned_by_second = [u for u in users if _state(second, u)]
    assert owned_by_second, "the second worker owns no user: partitions were not split"
    before = {u: _state(second, u) for u in owned_by_second[:10]}

    second.kill()   # kill -9: no goodbye, no final commit
    asyncio.run(produce(fresh_broker.bootstrap_servers, records[600:]))
    # the survivor takes the dead worker's partitions after its session expires
    for user, state in before.items():
        recovered = wait_for(lambda u=user: _state(first, u), timeout_s=120, what=f"{user} on the survivor")
        assert recovered["items"][: len(state["items"])] == state["items"]
        assert set(state["seen"]) <= set(recovered["seen"])

    events = [json.loads(r.value) for r in records]

    def recs() -> list[dict]:
        return [json.loads(m.value) for m in read_topic(fresh_broker.bootstrap_servers, "recommendations",
                                                        len(events), timeout_s=5)]

    # nothing lost: every event answered by some recommendation of its user
    answered = wait_for(lambda: (lambda r: r if not unanswered_users(r, events) else None)(recs()),
                        timeout_s=120, poll_s=2, what="every event answered")
    seen = Counter(r["trigger_event_id"] for r in answered)
    assert sum(seen.values()) - len(seen) <= 600                  # at-least-once: redelivery bounded


def test_a_sink_starts_without_a_model_and_stores_a_scorers_costs(workers, fresh_broker, tmp_path) -> None:
    # The sink scores nothing: an empty registry must not stop it, and it loads no model.
    empty = tmp_path / "no-models"
    empty.mkdir()
    sink = workers.start("sink-only", RECKON_ROLE="sink", RECKON_MODEL_REGISTRY=str(empty))
    stats = sink.stats() or {}
    assert stats["model_version"] is None and stats["device"] is None
    scorer = workers.start("scorer-beside-sink", RECKON_ROLE="scorer")
    sent = asyncio.run(produce(fresh_broker.bootstrap_servers, TrafficGenerator(seed=23).records(600)))
    wait_for(lambda: _consumed(scorer) >= sent["sent"], what="the scorer consumed")
    version = (scorer.stats() or {})["model_version"]
    report = wait_for(lambda: _costs_of(sink, version), what="the scorer's costs in the sink's store")
    assert report["recommendations"] > 0
    asked = httpx.get(f"http://127.0.0.1:{scorer.web_port}/costs", timeout=5)     # the scorer holds no store
    assert asked.status_code == 404 and "RECKON_ROLE=all or sink" in asked.json()["error"]
    started = [line for line in sink.log_path.read_text().splitlines() if "reckon worker started" in line]
    assert started and "model_version=none (sink role)" in started[-1]


def _costs_of(sink, version: str) -> dict | None:
    response = httpx.get(f"http://127.0.0.1:{sink.web_port}/costs", params={"hours": "1"}, timeout=10)
    if response.status_code != 200:
        return None
    rows = [row for row in response.json()["by_version"] if row["model_version"] == version]
    return rows[0] if rows and rows[0]["recommendations"] else None


def test_a_second_sinking_worker_on_an_embedded_store_is_told_to_score_only(workers, tmp_path) -> None:
    import pytest

    first = workers.start("sinks-first", RECKON_ROLE="all")
    store = f"chdb://{tmp_path / 'sinks-first' / 'clickhouse'}"
    assert first.stats() is not None
    with pytest.raises(Exception, match="RECKON_ROLE=scorer"):
        workers.start("sinks-second", RECKON_ROLE="all", RECKON_CLICKHOUSE_DSN=store)
    log = (tmp_path / "sinks-second" / "sinks-second.log").read_text()
    assert "run this worker with RECKON_ROLE=scorer (an embedded store takes one sinking worker)" in log
    assert "Traceback" not in log
