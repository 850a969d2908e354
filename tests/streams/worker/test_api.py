"""GET /recommendations/{user} and POST /events on two real workers in one group."""

from __future__ import annotations

import gzip
import json
import time

import httpx
import pytest

from ..conftest import wait_for

EVERY = "every-tenant-token-0123456789"
ACME = "acme-only-token-0123456789"


def _click(event_id: str, user: str, item: str, tenant: str = "acme") -> dict:
    return {"event_id": event_id, "user_id": user, "item_id": item, "action": "view", "ts": time.time(),
            "tenant": tenant}


class _Client:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, token: str | None = EVERY, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.base + path, headers=headers, params=params, timeout=10)

    def post(self, body: object, token: str | None = EVERY, raw: bytes | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(self.base + "/events", headers={**headers, "Content-Type": "application/json"}, timeout=10,
                          content=raw if raw is not None else json.dumps(body).encode())


@pytest.mark.integration
def test_any_worker_answers_for_every_user(workers) -> None:
    env = {"RECKON_WEB_TOKEN": EVERY, "RECKON_WEB_TENANT_TOKENS": f'{{"acme": "{ACME}"}}',
           "RECKON_TENANTS": "acme,globex"}
    first = workers.start("api-a", RECKON_ROLE="all", **env)
    second = workers.start("api-b", RECKON_ROLE="scorer", **env)
    a, b = _Client(first.web_port), _Client(second.web_port)
    users = [f"u{n}" for n in range(24)]

    # posted events: accepted, rejected with the contract's reason, duplicates not produced again
    events = [_click(f"e-{user}", user, f"i{n % 5}") for n, user in enumerate(users)]
    bad = {**_click("e-bad", "u0", "i1"), "action": "stare"}
    answer = a.post(events + [bad, events[0]])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["rejected"], body["duplicate"]) == (len(users), 1, 1)
    assert body["results"][len(users)]["reason"] == "unknown_action"
    again = b.post({"events": events[:2]})
    assert again.json()["accepted"] == 2      # ids are per worker: the event path drops the resend
    assert a.post(events[:2]).json()["duplicate"] == 2

    # every user's recommendation from either worker; both workers own some of them
    answered_by = {}
    for user in users:
        got = wait_for(lambda u=user: (lambda r: r if r.status_code == 200 else None)(a.get(f"/recommendations/{u}",
                                                                                            tenant="acme")),
                       timeout_s=120, what=f"{user}'s recommendation")
        rec = got.json()
        assert rec["user_id"] == user and rec["tenant"] == "acme" and rec["items"]
        assert {"scores", "model_version", "arm", "trigger_ts", "latency_ms", "ts"} <= set(rec)
        via_b = b.get(f"/recommendations/{user}", tenant="acme")
        assert via_b.status_code == 200 and via_b.json()["trigger_event_id"] == rec["trigger_event_id"]
        assert via_b.headers["X-Reckon-Worker"] == got.headers["X-Reckon-Worker"]
        answered_by[user] = got.headers["X-Reckon-Worker"]
    assert set(answered_by.values()) == {"api-a", "api-b"}, answered_by

    # fresh=1 scores the current state now, on the owner, and publishes nothing
    for user in (users[0], next(u for u, w in answered_by.items() if w != answered_by[users[0]])):
        fresh = b.get(f"/recommendations/{user}", tenant="acme", fresh="1")
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["fresh"] is True and fresh.json()["items"]
        assert fresh.headers["X-Reckon-Worker"] == answered_by[user]
    assert a.get("/recommendations/nobody", tenant="acme").status_code == 404
    assert a.get("/recommendations/u0", tenant="globex").json()["error"].startswith("no recommendation")

    # auth: as /state
    assert a.get("/recommendations/u0", token=None, tenant="acme").status_code == 401
    wrong = a.get("/recommendations/u0", token="wrong-token-0123456789", tenant="acme")
    assert wrong.status_code == 401 and wrong.json()["error"].startswith("a valid bearer token is required")
    assert a.get("/recommendations/u0", token=ACME, tenant="acme").status_code == 200
    assert b.get("/recommendations/u0", token=ACME, tenant="globex").status_code == 403
    assert a.post([_click("e-x", "u1", "i1")], token=None).status_code == 401
    refused = a.post([_click("e-g", "u1", "i1", tenant="globex")], token=ACME)
    assert refused.status_code == 403 and "globex" in refused.json()["error"]
    assert a.post([_click("e-g", "u1", "i1", tenant="globex")]).json()["accepted"] == 1   # not claimed by the 403

    # bad parameters and bodies: one-line JSON errors
    for params in ({"tenant": "acme", "fresh": "2"}, {"tenant": "acme", "page": "1"}, {"tenant": "initech"}):
        r = a.get("/recommendations/u0", **params)
        assert r.status_code == 400 and "\n" not in r.json()["error"], params
    assert a.get("/recommendations/" + "u" * 129, tenant="acme").json()["error"].startswith("tenant or user: too_long")
    assert a.post(None, raw=b"{not json").status_code == 400
    assert a.post(None, raw=b'{"events": 3}').status_code == 400
    assert a.post([_click(f"e-many-{n}", "u1", "i1") for n in range(1001)]).status_code == 400
    assert a.post(None, raw=b"[" + b" " * (1024 * 1024) + b"]").status_code == 413
    for deep in (b"[" * 5000 + b"]" * 5000, b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}"):
        r = a.post(None, raw=deep)          # was a 500 (RecursionError) in the body's decoder, then a 400
        assert r.status_code == 200 and [x["reason"] for x in r.json()["results"]] == ["too_deep"], r.text
    r = a.post(None, raw=b"[" * 5000 + b"]" * 4999)      # not JSON: unbalanced
    assert r.status_code == 400 and "\n" not in r.json()["error"], r.text
    nested = a.post(None, raw=b'[{"event_id": "e-deep", "user_id": ' + b"[" * 300 + b"]" * 300 + b"}]")
    # a key named twice: Reckon reads the last value, another reader of the topic the first
    twice = json.dumps(_click("e-twice", "u1", "i1"))[:-1] + ', "user_id": "u2"}'
    r = a.post(None, raw=f"[{twice}, {json.dumps(_click('e-once', 'u1', 'i1'))}]".encode())
    assert (r.json()["accepted"], r.json()["rejected"]) == (1, 1), r.text
    assert r.json()["results"][0]["reason"] == "duplicate_key" and "'user_id'" in r.json()["results"][0]["detail"]
    assert nested.status_code == 200 and nested.json()["rejected"] == 1, nested.text
    # an escape of half a surrogate pair is valid JSON that msgspec refuses: that event alone
    lone = json.dumps(_click("e-lone", "u1", "\ud800"))
    r = a.post(None, raw=f'{{"events": [{json.dumps(_click("e-pair", "u1", "i1"))}, {lone}]}}'.encode())
    assert (r.json()["accepted"], r.json()["rejected"]) == (1, 1), r.text
    assert r.json()["results"][1]["reason"] == "bad_text"
    for encoding in ("gzip", "deflate"):      # a body that does not decompress was a 500
        r = httpx.post(a.base + "/events", content=b"not compressed", timeout=10,
                       headers={"Authorization": f"Bearer {EVERY}", "Content-Encoding": encoding,
                                "Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"].startswith("the body cannot be decoded"), r.text
    gzipped = httpx.post(a.base + "/events", content=gzip.compress(json.dumps([_click("e-gz", "u1", "i1")]).encode()),
                         headers={"Authorization": f"Bearer {EVERY}", "Content-Encoding": "gzip",
                                  "Content-Type": "application/json; charset=utf-8"}, timeout=10)
    assert gzipped.json()["accepted"] == 1, gzipped.text
    # what a browser may send cross-site without asking first: refused, nothing produced
    for media in ("text/plain;charset=UTF-8", "application/x-www-form-urlencoded", None):
        r = httpx.post(a.base + "/events", content=json.dumps([_click("e-csrf", "u1", "i1")]).encode(), timeout=10,
                       headers={"Authorization": f"Bearer {EVERY}", **({"Content-Type": media} if media else {})})
        assert r.status_code == 415 and r.json()["error"] == "Content-Type must be application/json", r.text
    assert a.post([_click("e-csrf", "u1", "i1")]).json()["accepted"] == 1      # never produced before
