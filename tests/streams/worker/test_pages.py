"""The worker's pages that show user or tenant data, behind optional bearer tokens."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from pydantic import SecretStr

from reckon.streams.core.settings import Settings
from reckon.streams.traffic.replay import produce
from reckon.streams.worker.auth import PageAuth, Scope

from ..conftest import wait_for
from ..kafka_io import click

EVERY = "every-tenant-token-0123456789"
ACME = "acme-only-token-0123456789"


def test_scopes() -> None:
    open_ = PageAuth(Settings(worker_name="t"))
    assert not open_.enabled and open_.scope(None) == Scope(None)
    auth = PageAuth(Settings(worker_name="t", web_token=SecretStr(EVERY),
                             web_tenant_tokens={"acme": SecretStr(ACME)}))
    assert auth.enabled
    assert auth.scope(f"Bearer {EVERY}") == Scope(None) and auth.scope(f"bearer {ACME}") == Scope("acme")
    for header in (None, "", EVERY, f"Basic {EVERY}", f"Bearer {EVERY}x", "Bearer ", "Bearer \udcff"):
        assert auth.scope(header) is None, header
    assert Scope("acme").allows("acme") and not Scope("acme").allows("globex") and not Scope("acme").allows(None)


def test_short_tokens_are_refused_at_start() -> None:
    from reckon.streams.core.errors import SettingsError
    from reckon.streams.core.settings import load_settings

    with pytest.raises(SettingsError, match="RECKON_WEB_TOKEN"):
        load_settings(web_token="short")


@pytest.mark.integration
def test_state_and_costs_need_a_token_that_covers_the_tenant(workers, fresh_broker) -> None:
    worker = workers.start("pages", RECKON_WEB_TOKEN=EVERY, RECKON_WEB_TENANT_TOKENS=f'{{"acme": "{ACME}"}}')
    events = [click("e1", "u1", "i1"), click("e2", "u1", "i2", tenant="globex")]
    asyncio.run(produce(fresh_broker.bootstrap_servers, events))
    base = f"http://127.0.0.1:{worker.web_port}"

    def get(path: str, token: str | None = None, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(base + path, headers=headers, params=params, timeout=10)

    wait_for(lambda: get("/state/acme/u1", EVERY).status_code == 200, what="u1's state")
    assert get("/state/acme/u1").status_code == 401
    assert get("/state/acme/u1").headers["WWW-Authenticate"].startswith("Bearer")
    assert get("/state/acme/u1", "wrong-token-0123456789").status_code == 401
    assert get("/state/acme/u1", ACME).json()["state"]["items"] == ["i1"]
    assert get("/state/globex/u1", ACME).status_code == 403
    assert get("/state/globex/u1", EVERY).json()["state"]["items"] == ["i2"]   # same user id, its own state
    # ids the event contract refuses, refused as /recommendations refuses them (were 404s)
    too_long = get("/state/acme/" + "u" * 129, EVERY)
    assert too_long.status_code == 400 and too_long.json()["error"].startswith("tenant or user: too_long")
    assert get("/state/acme/u%E2%80%AE1", EVERY).json()["error"].startswith("tenant or user: bad_text")
    # an escape of bytes that are not UTF-8 names no user (the router read it as the user "%FF")
    undecodable = get("/state/acme/%FF", EVERY)
    assert undecodable.status_code == 400 and "percent-escapes are not UTF-8" in undecodable.json()["error"]
    assert get("/state/acme/%25FF", EVERY).status_code == 404                  # the user named %FF
    assert get("/stats").status_code == 200                                    # no user data
    missing = get("/no-such-page")                           # aiohttp's own answers are JSON too
    assert missing.status_code == 404 and missing.text == '{"error":"Not Found"}'   # compact, as the pages write
    wrong_method = httpx.delete(base + "/stats", timeout=10)
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()
    with socket.create_connection(("127.0.0.1", worker.web_port), timeout=10) as raw:   # a URL over 8 KiB
        raw.sendall(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.recv(64).startswith(b"HTTP/1.0 400")
    wait_for(lambda: "refused a request" in worker.tail(200), what="the refusal's log line")
    assert "Traceback" not in worker.tail(200)          # a client's mistake, not an error of ours
    # /metrics carries every tenant's cost (reckon_cost_usd_total{tenant=...}): every-tenant token only
    assert get("/metrics").status_code == 401 and get("/metrics", ACME).status_code == 403
    assert 'tenant="globex"' not in get("/metrics", ACME).text
    wait_for(lambda: 'tenant="globex"' in get("/metrics", EVERY).text, what="globex's cost on /metrics")
    assert get("/costs").status_code == 401
    assert get("/costs", ACME, tenant="globex").status_code == 403
    wait_for(lambda: get("/costs", ACME).status_code == 200, what="the cost report")
    assert get("/costs", ACME).json()["window"]["tenant"] == "acme"            # scoped to its tenant
    everything = get("/costs", EVERY, audit="1").json()
    assert everything["window"]["tenant"] is None
    assert {"by_component", "clickhouse", "audit"} <= set(everything)
    # a tenant's token: no section over every tenant (cost by kind, table sizes, the audit)
    assert not {"by_component", "clickhouse", "audit"} & set(get("/costs", ACME, audit="1").json())
    assert get("/costs", EVERY, end="0001-01-01").status_code == 400
    twice = httpx.get(base + "/costs?tenant=acme&tenant=globex", headers={"Authorization": f"Bearer {EVERY}"}, timeout=10)
    assert twice.status_code == 400 and twice.json()["error"] == "parameter 'tenant' given more than once"
    garbled = httpx.get(base + "/costs?tenant=%FF", headers={"Authorization": f"Bearer {EVERY}"}, timeout=10)
    assert garbled.status_code == 400 and "percent-escapes are not UTF-8" in garbled.json()["error"]


@pytest.mark.integration
def test_connections_are_capped_and_idle_ones_closed(workers) -> None:
    """A client that opens connections and never finishes a request (slowloris) neither keeps
    them nor takes the port: past RECKON_WEB_MAX_CONNECTIONS one is answered 503 at once, and
    each is closed RECKON_WEB_IDLE_TIMEOUT_S after it opened; then the port answers again."""
    worker = workers.start("idle", RECKON_WEB_IDLE_TIMEOUT_S="2", RECKON_WEB_MAX_CONNECTIONS="20")
    base = f"http://127.0.0.1:{worker.web_port}"
    wait_for(lambda: httpx.get(base + "/stats", timeout=5).status_code == 200, what="the web port")
    idle = [socket.create_connection(("127.0.0.1", worker.web_port), timeout=30) for _ in range(20)]
    started = time.monotonic()
    for sock in idle[:10]:
        sock.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n")          # headers never finished
    time.sleep(0.5)          # counted once the worker has taken them (a burst is counted after it)
    with socket.create_connection(("127.0.0.1", worker.web_port), timeout=10) as extra:
        answer = extra.recv(4096)                                    # before it sends anything
    assert answer.startswith(b"HTTP/1.1 503") and b'"error":"too many connections' in answer
    for sock in idle:
        with sock:
            assert sock.recv(1024) == b""           # closed by the worker, nothing answered
    assert time.monotonic() - started < 15
    with httpx.Client(timeout=5) as client:          # a keep-alive client asking within it is served
        for _ in range(3):
            assert client.get(base + "/stats").status_code == 200
            time.sleep(0.5)
