"""POST /events idempotency and request parsing, without a broker."""

from __future__ import annotations

import pytest

from reckon.streams.core.settings import Settings
from reckon.streams.worker.api import check_user, split_events, topic_of
from reckon.streams.worker.recent_ids import RecentIds


def test_an_accepted_id_is_a_duplicate_and_a_failed_one_may_retry() -> None:
    ids = RecentIds(2)
    assert ids.claim("a") and not ids.claim("a")       # claimed: a concurrent resend waits its turn
    ids.confirm("a")
    assert not ids.claim("a")
    assert ids.claim("b")
    ids.release("b")                                   # the broker did not take it
    assert ids.claim("b")
    ids.confirm("b")
    assert ids.claim("c")
    ids.confirm("c")
    assert ids.claim("a") and len(ids) == 2            # bounded: the oldest forgotten


def test_bodies_split_into_events_as_sent() -> None:
    assert split_events(b'[{"a": 1}, {"b": [2]}]') == [b'{"a": 1}', b'{"b": [2]}']
    assert split_events(b' {"events": [3, "x"]}') == [b"3", b'"x"']
    # JSON msgspec refuses (an unpaired surrogate's escape, NaN) is split by the standard
    # library's parser, each event as sent, for the contract to refuse alone
    assert split_events(rb'[{"a": "\ud800"} , 2]') == [rb'{"a": "\ud800"}', b"2"]
    assert split_events(rb' {"x": [1], "events": [ NaN, {"b": "\udc00"} ], "y": {"events": 2} }') == [
        b"NaN", rb'{"b": "\udc00"}']
    for bad in (b"{", b'{"events": 3}', b"3", b'{"other": []}', rb'{"other": ["\ud800"]}', b"[1,]",
                rb'"\ud800"'):
        with pytest.raises(ValueError, match="JSON array of events"):
            split_events(bad)
    assert topic_of(b'{"query": "q"}') == "searches" and topic_of(b'{"item_id": "i"}') == "clicks"
    assert topic_of(b"[]") == "clicks"
    deep = b"[" * 5000 + b"]" * 5000             # JSON: one event, nested past msgspec's depth
    assert split_events(deep) == [deep[1:-1]]
    assert topic_of(deep[1:-1]) == "clicks"      # the contract then rejects it as too_deep
    with pytest.raises(ValueError, match="^body is nested deeper than an event may be"):
        split_events(deep[:-1])                  # not JSON (unbalanced), and too deep to say more


def test_users_are_checked_by_the_contract() -> None:
    settings = Settings(worker_name="t", tenants=("acme",))
    assert check_user(settings, "acme", "u1") is None
    assert check_user(settings, "globex", "u1").startswith("unknown_tenant")
    assert check_user(settings, "acme", "u" * 129).startswith("too_long")
    assert check_user(settings, "acme", "u\u202e").startswith("bad_text")
