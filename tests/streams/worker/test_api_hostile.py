"""Property: hostile events posted to a real worker's POST /events. Whatever a body holds,
the answer is a 200 or a one-line 400, never a 500; a body that is JSON (as the standard
allows it) is answered event by event, each rejection the contract's own reason; what was
accepted reaches the topic and the worker's event path takes it as valid; the worker
stays up."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from reckon.streams.pipeline.contracts import Invalid, json_document, parse_event
from reckon.streams.worker.api import topic_of

from ..conftest import wait_for
from ..hostile import documents, valid_documents

pytestmark = pytest.mark.integration

NOW = time.time()
_bodies = st.lists(documents(NOW) | valid_documents(NOW), min_size=1, max_size=30)


def _is_json_array(body: bytes) -> bool:
    try:
        return isinstance(json_document(body.decode("utf-8")), list)   # any integer: the standard sets no limit
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


@settings(max_examples=12, deadline=None, derandomize=True, phases=[Phase.generate], suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(docs=_bodies)
def test_hostile_bodies_through_a_live_worker(workers, docs) -> None:
    worker = workers.started[0] if workers.started else workers.start("post-hostile", RECKON_ROLE="all")
    pid = worker.proc.pid
    before = wait_for(worker.stats, what="the worker answering")
    body = b"[" + b", ".join(docs) + b"]"
    r = httpx.post(f"http://127.0.0.1:{worker.web_port}/events", content=body, timeout=30,
                   headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert not _is_json_array(body), r.text          # JSON the standard allows is answered per event
        assert "\n" not in r.json()["error"]
        return
    results = r.json()["results"]
    assert len(results) == len(docs)
    for doc, result in zip(docs, results):
        parsed = parse_event(topic_of(doc), doc, time.time(), "default")
        if result["status"] == "rejected":
            expected = parsed.reason if isinstance(parsed, Invalid) else "duplicate_key"
            assert result["reason"] == expected, (doc, result)
        else:
            assert result["status"] in ("accepted", "duplicate") and not isinstance(parsed, Invalid), (doc, result)
    accepted = r.json()["accepted"]

    def consumed() -> dict | None:
        stats = worker.stats() or {}
        return stats if stats.get("consumed", 0) >= before.get("consumed", 0) + accepted else None

    after = wait_for(consumed, timeout_s=60, what="the accepted events consumed")
    taken = sum(after.get(k, 0) - before.get(k, 0) for k in ("valid", "duplicate"))
    assert taken == after.get("consumed", 0) - before.get("consumed", 0) == accepted   # none dead-lettered
    assert worker.proc.poll() is None and worker.proc.pid == pid
