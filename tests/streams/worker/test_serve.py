"""`reckon serve`: a read replica of the recommendations topic, on the real embedded broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from reckon.streams.worker.stack import start_replica

from ..conftest import wait_for
from .test_api import ACME, EVERY, _click, _Client

TOKENS = {"RECKON_WEB_TOKEN": EVERY, "RECKON_WEB_TENANT_TOKENS": f'{{"acme": "{ACME}"}}'}


def _rec(user: str, tenant: str, n: int) -> tuple[bytes, bytes]:
    return user.encode(), json.dumps({"user_id": user, "tenant": tenant, "items": [f"i{n}"], "n": n}).encode()


def _publish(bootstrap: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for key, value in records:
                await producer.send_and_wait("recommendations", value=value, key=key)
        finally:
            await producer.stop()
    asyncio.run(send())


# What another writer of the topic could put there: none of it may stop the replica or be served.
HOSTILE = [(b"x", b"not json"), (b"x", None), (b"x", b"[1, 2]"), (b"x", b'{"user_id": "u9"}'),
           (b"x", b'{"user_id": "\\ud800", "tenant": "acme"}'), (b"x", b'{"user_id": 7, "tenant": "acme"}'),
           (b"x", b"\xff\xfe"), (b"x", b"[" * 100_000 + b"]" * 100_000),
           (b"x", json.dumps({"user_id": "u1", "tenant": "acme", "pad": "x" * 300_000}).encode())]


@pytest.mark.integration
def test_replica_holds_at_most_max_mib_of_recommendations(fresh_broker, tmp_path: Path) -> None:
    # 12 users' recommendations of ~120 KB each: 1 MiB holds 8 (the last read: partitions are
    # read side by side, so which 8 is the broker's order, not the producer's)
    bootstrap = fresh_broker.bootstrap_servers
    big = [(f"u{n}".encode(), json.dumps({"user_id": f"u{n}", "tenant": "default", "items": ["i" * 120_000]}).encode())
           for n in range(12)]
    _publish(bootstrap, big)
    replica = start_replica(bootstrap, tmp_path / "serve.log", options=("--max-mib", "1"))
    try:
        client = _Client(replica.web_port)
        health = client.get("/healthz", token=None).json()
        assert (health["users"], health["read"]) == (8, 12) and health["held_bytes"] <= 1024 * 1024
        answers = sorted(client.get(f"/recommendations/u{n}", token=None).status_code for n in range(12))
        assert answers == [200] * 8 + [404] * 4
    finally:
        replica.stop()


@pytest.mark.integration
def test_replica_answers_each_users_latest_and_skips_what_is_not_a_recommendation(fresh_broker,
                                                                                  tmp_path: Path) -> None:
    bootstrap = fresh_broker.bootstrap_servers
    _publish(bootstrap, [_rec("u1", "acme", 1), *HOSTILE, _rec("u1", "acme", 2), _rec("u1", "globex", 3)])
    replica = start_replica(bootstrap, tmp_path / "serve.log", RECKON_TENANTS="acme,globex", **TOKENS)
    try:
        client = _Client(replica.web_port)
        health = client.get("/healthz", token=None).json()
        assert (health["caught_up"], health["users"], health["read"], health["skipped"]) == (True, 2, 3, len(HOSTILE))
        assert health["held_bytes"] == sum(len(f"{tenant}\x1fu1".encode()) + len(_rec("u1", tenant, n)[1])
                                           for tenant, n in (("acme", 2), ("globex", 3)))     # keys and values
        got = client.get("/recommendations/u1", tenant="acme")
        assert got.status_code == 200 and got.json()["n"] == 2          # the last one published
        assert got.content == _rec("u1", "acme", 2)[1]                  # as published, byte for byte
        assert got.headers["X-Reckon-Worker"] == "replica"
        assert client.get("/recommendations/u1", tenant="globex").json()["n"] == 3     # tenants apart
        missing = client.get("/recommendations/u2", tenant="acme")
        assert missing.status_code == 404 and missing.json()["error"].startswith("no recommendation for user 'u2'")

        # the worker's rules: tokens, tenants, the contract's ids, one-line errors
        assert client.get("/recommendations/u1", token=None, tenant="acme").status_code == 401
        assert client.get("/recommendations/u1", token=ACME, tenant="acme").status_code == 200
        assert client.get("/recommendations/u1", token=ACME, tenant="globex").status_code == 403
        for params in ({"tenant": "acme", "fresh": "2"}, {"tenant": "acme", "page": "1"}, {"tenant": "initech"}):
            r = client.get("/recommendations/u1", **params)
            assert r.status_code == 400 and "\n" not in r.json()["error"], params
        assert client.get("/recommendations/" + "u" * 129, tenant="acme").json()["error"].startswith(
            "tenant or user: too_long")
        fresh = client.get("/recommendations/u1", tenant="acme", fresh="1")
        assert fresh.status_code == 400 and "--worker" in fresh.json()["error"]
        assert client.get("/nowhere").json() == {"error": "Not Found"}
        # Prometheus figures: every tenant's, so RECKON_WEB_TOKEN's only
        assert client.get("/metrics", token=None).status_code == 401
        assert client.get("/metrics", token=ACME).status_code == 403
        metrics = client.get("/metrics").text
        assert f"reckon_replica_records_skipped_total {float(len(HOSTILE))}" in metrics
        assert "reckon_replica_users 2.0" in metrics and "reckon_replica_caught_up 1.0" in metrics
        assert f"reckon_replica_held_bytes {float(health['held_bytes'])}" in metrics
        assert 'reckon_replica_requests_total{status="200"}' in metrics
        assert 'reckon_replica_requests_total{status="401"} 1.0' in metrics

        # new recommendations are answered as they are published
        _publish(bootstrap, [_rec("u1", "acme", 4), _rec("u2", "acme", 5)])
        wait_for(lambda: client.get("/recommendations/u1", tenant="acme").json().get("n") == 4, timeout_s=10,
                 what="u1's newer recommendation")
        assert client.get("/recommendations/u2", tenant="acme").json()["n"] == 5
    finally:
        assert replica.stop() == 0, replica.tail()


@pytest.mark.integration
def test_replica_serves_what_a_worker_published_and_forwards_fresh(workers, tmp_path: Path) -> None:
    worker = workers.start("w1", RECKON_ROLE="all", RECKON_TENANTS="acme", **TOKENS)
    direct = _Client(worker.web_port)
    users = [f"u{n}" for n in range(12)]
    assert direct.post([_click(f"e-{u}", u, f"i{n % 4}") for n, u in enumerate(users)]).json()["accepted"] == 12
    for user in users:
        wait_for(lambda u=user: direct.get(f"/recommendations/{u}", tenant="acme").status_code == 200,
                 timeout_s=120, what=f"{user}'s recommendation")
    replica = start_replica(workers.broker.bootstrap_servers, tmp_path / "serve.log",
                            worker_url=f"http://127.0.0.1:{worker.web_port}", RECKON_TENANTS="acme", **TOKENS)
    try:
        via = _Client(replica.web_port)
        for user in users:
            assert via.get(f"/recommendations/{user}", tenant="acme").content == \
                direct.get(f"/recommendations/{user}", tenant="acme").content, user
        fresh = via.get("/recommendations/u3", tenant="acme", fresh="1")
        assert fresh.status_code == 200 and fresh.json()["fresh"] is True, fresh.text
        assert fresh.headers["X-Reckon-Worker"] == "w1"
        assert via.get("/recommendations/u3", token=None, tenant="acme", fresh="1").status_code == 401   # not forwarded
        # a later event: the worker publishes, the replica answers the newer recommendation
        before = json.loads(direct.get("/recommendations/u3", tenant="acme").content)["trigger_event_id"]
        assert direct.post([_click("e-later", "u3", "i9")]).json()["accepted"] == 1
        wait_for(lambda: via.get("/recommendations/u3", tenant="acme").json()["trigger_event_id"] == "e-later",
                 timeout_s=60, what="the replica's newer answer")
        assert before != "e-later"
    finally:
        assert replica.stop() == 0, replica.tail()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{replica.web_port}/healthz", timeout=2)


def test_a_replica_still_reading_answers_503_not_404() -> None:
    from types import SimpleNamespace

    from aiohttp.test_utils import TestClient, TestServer

    from reckon.streams.core.settings import Settings
    from reckon.streams.worker.replica import Replica
    from reckon.streams.worker.serve import ReplicaPages, make_app

    replica = Replica("127.0.0.1:9", {}, max_users=2)       # never started: what a fresh replica knows

    async def scenario() -> None:
        async with TestClient(TestServer(make_app(ReplicaPages(Settings(), replica, None)))) as client:
            reading = await client.get("/recommendations/u1")
            assert reading.status == 503 and reading.headers["Retry-After"] == "1"
            assert "still reading the recommendations topic" in (await reading.json())["error"]
            assert (await client.get("/healthz")).status == 503
            replica.caught_up = True
            replica.take([SimpleNamespace(value=v) for _, v in (_rec("u1", "default", 1), _rec("u2", "default", 2),
                                                                 _rec("u3", "default", 3))])
            assert (await client.get("/recommendations/u1")).status == 404      # bounded: u1 went first
            assert json.loads(await (await client.get("/recommendations/u3")).read())["n"] == 3
            for url in ("/recommendations/%FF", "/recommendations/u3?tenant=%FF"):   # bytes that are not UTF-8
                refused = await client.get(url)
                assert refused.status == 400 and "percent-escapes are not UTF-8" in (await refused.json())["error"]
            health = await (await client.get("/healthz")).json()
            assert (health["users"], health["read"]) == (2, 3)

    asyncio.run(scenario())
