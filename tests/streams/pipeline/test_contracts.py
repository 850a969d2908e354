"""The fast (msgspec) event parser never disagrees with the explicit one, and whatever
either accepts is something the rest of the path can hold."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reckon.streams.pipeline.contracts as contracts
from reckon.streams.pipeline.contracts import (
    MAX_DEPTH,
    MAX_PRICE,
    REASONS,
    Event,
    Invalid,
    _parse_slow,
    parse_batch,
    parse_event,
)
from reckon.streams.traffic.generator import TrafficGenerator

from ..hostile import documents, valid_documents

NOW = 1_800_000_000.0
_records = documents(NOW) | valid_documents(NOW) | st.binary(max_size=80)
_tenants = st.none() | st.just(frozenset({"acme", "dflt"}))


def _reference(kind: str, raw: bytes | None, tenants=None) -> Event | Invalid:
    """The contract as the explicit parser states it (a null value, then the size limit first)."""
    if raw is None:
        return Invalid("no_value", "the record has no value (a tombstone)")
    if len(raw) > contracts.MAX_EVENT_BYTES:
        return Invalid("oversized", f"{len(raw)} bytes > {contracts.MAX_EVENT_BYTES}")
    return _parse_slow(kind, raw, NOW, "dflt", tenants)


@settings(max_examples=1500, deadline=None)
@given(kind=st.sampled_from(["click", "search"]), raw=_records, tenants=_tenants)
def test_fast_path_agrees_with_the_explicit_parser(kind: str, raw: bytes, tenants) -> None:
    topic = "clicks" if kind == "click" else "searches"
    result = parse_event(topic, raw, NOW, "dflt", tenants)
    assert result == _reference(kind, raw, tenants)
    assert isinstance(result, Event) or result.reason in REASONS


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["click", "search"]), raws=st.lists(_records | st.none(), max_size=20))
def test_a_batch_parses_each_record_on_its_own(kind: str, raws: list[bytes]) -> None:
    topic = "clicks" if kind == "click" else "searches"
    assert parse_batch(topic, raws, NOW, "dflt") == [_reference(kind, raw) for raw in raws]


@settings(max_examples=1000, deadline=None)
@given(kind=st.sampled_from(["click", "search"]), raw=documents(NOW) | valid_documents(NOW))
def test_an_accepted_event_is_one_the_path_can_hold(kind: str, raw: bytes) -> None:
    event = parse_event("clicks" if kind == "click" else "searches", raw, NOW, "dflt")
    if isinstance(event, Invalid):
        return
    ids = [event.event_id, event.user_id, event.tenant, event.session_id]
    ids += [event.item_id] if event.kind == "click" else list(event.results)
    for text in ids + ([event.query] if event.kind == "search" else []):
        text.encode("utf-8")                       # state keys, Kafka keys, ClickHouse strings
    assert all(text.isprintable() for text in ids)
    msgspec.json.encode(event)                      # state and recommendations are msgspec JSON
    datetime.fromtimestamp(event.ts, timezone.utc)
    if event.kind == "click" and event.price is not None:
        assert math.isfinite(event.price) and 0 <= event.price <= MAX_PRICE
        Decimal(repr(event.price)).quantize(Decimal("0.000001"))   # clicks_log.price


def _click(**fields: object) -> bytes:
    doc = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "action": "view", "ts": NOW, **fields}
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("raw", "reason"), [
    (_click(price=float("nan")), "not_finite"),
    (_click(price=float("inf")), "not_finite"),
    (_click().replace(b'"ts": 1800000000.0', b'"ts": 1e400'), "not_finite"),
    (_click(ts=float("nan")), "not_finite"),
    (_click(price=1e300), "price_out_of_range"),
    (_click(price=-0.01), "price_out_of_range"),
    (_click(price=10**30), "price_out_of_range"),
    (_click(ts=10**30), "ts_out_of_range"),
    (_click(user_id="\ud800"), "bad_text"),
    (_click(item_id="a\u0000b"), "bad_text"),
    (_click(tenant="ac\u202eme"), "bad_text"),
    (_click(session_id="s\x7f"), "bad_text"),
    (_click(session_id="s" * 129), "too_long"),
    (_click(event_id=10**200), "too_long"),
    (_click(tenant=7), "wrong_type"),
    (_click(user_id=True), "wrong_type"),
    (_click(price="9.99"), "wrong_type"),
    (_click(zz=[[[[1]]]]).replace(b"[[[[1]]]]", b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)), "too_deep"),
    (b"[" * 5000 + b"]" * 5000, "too_deep"),
    (_click().replace(b'"u1"', b'"u\xed\xa0\x80"'), "not_utf8"),        # a surrogate as CESU-8 bytes
    (_click().replace(b'"u1"', b'"u\xc0\xaf"'), "not_utf8"),            # an overlong form
    (b"\xef\xbb\xbf" + _click(), "not_json"),                            # a BOM: UTF-8, not JSON
    (_click().decode().encode("utf-16"), "not_utf8"),
    (_click().replace(b"1800000000.0", b"1" + b"0" * 5000), "ts_out_of_range"),  # over 4,300 digits
    (_click(price=1).replace(b'"price": 1', b'"price": ' + b"9" * 4400), "price_out_of_range"),
    (_click().replace(b'"u1"', b"7" * 5000), "too_long"),
])
def test_each_hostile_class_is_named(raw: bytes, reason: str) -> None:
    result = parse_event("clicks", raw, NOW)
    assert isinstance(result, Invalid) and result.reason == reason, result
    assert "sys." not in result.detail                  # details speak of the event, not of Python


def test_a_huge_integer_is_valid_json_on_both_paths() -> None:
    # Over Python's 4,300 digits: valid JSON, which msgspec's fast path skips in a field the
    # contract does not read. The explicit parser (non-ASCII text elsewhere sends an event
    # there) must agree, or an event's verdict would hang on an unrelated character.
    huge = b', "zz": ' + b"1" + b"0" * 5000 + b"}"
    ascii_event = _click()[:-1] + huge
    non_ascii = json.dumps({"event_id": "e1", "user_id": "u1", "item_id": "caf\u00e9", "action": "view", "ts": NOW},
                           ensure_ascii=False).encode()[:-1] + huge
    assert non_ascii.isascii() is False
    for raw in (ascii_event, non_ascii):
        assert isinstance(parse_event("clicks", raw, NOW), Event)
        assert isinstance(_reference("click", raw), Event)
    result = parse_event("clicks", _click().replace(b"1800000000.0", b"1" + b"0" * 5000), NOW)
    assert (result.reason, result.detail) == ("ts_out_of_range", "ts is an integer of 5001 digits")


def test_search_text_rules() -> None:
    def search(**fields: object) -> bytes:
        return json.dumps({"event_id": "e1", "user_id": "u1", "query": "red lamp", "ts": NOW, **fields}).encode()

    ok = parse_event("searches", search(query="rote\tLampe\n\u00fcber \u3000\u200d"), NOW)
    assert isinstance(ok, Event)                                  # free text keeps tabs and breaks
    for fields, reason in [({"query": "red\u0000"}, "bad_text"), ({"query": "\udfff"}, "bad_text"),
                           ({"query": "x" * 513}, "too_long"), ({"results": ["i1"] * 201}, "too_long"),
                           ({"results": ["i1", "\u200b"]}, "bad_text"), ({"results": [["i1"]]}, "wrong_type")]:
        result = parse_event("searches", search(**fields), NOW)
        assert isinstance(result, Invalid) and result.reason == reason, (fields, result)


def test_only_configured_tenants_are_served() -> None:
    tenants = frozenset({"acme", "default"})
    assert isinstance(parse_event("clicks", _click(tenant="acme"), NOW, tenants=tenants), Event)
    assert isinstance(parse_event("clicks", _click(), NOW, tenants=tenants), Event)   # the default tenant
    stranger = parse_event("clicks", _click(tenant="globex"), NOW, tenants=tenants)
    assert isinstance(stranger, Invalid) and stranger.reason == "unknown_tenant"


def test_generated_traffic_takes_the_fast_path(monkeypatch) -> None:
    now = time.time()
    records = TrafficGenerator(seed=3).records(500)
    expected = [_parse_slow("click" if r.topic == "clicks" else "search", r.value, now, "default") for r in records]
    assert all(isinstance(e, Event) for e in expected)

    def refuse(*args: object) -> None:
        raise AssertionError("a generated event took the slow path")

    monkeypatch.setattr(contracts, "_parse_slow", refuse)
    for topic in ("clicks", "searches"):
        got = parse_batch(topic, [r.value for r in records if r.topic == topic], now, "default")
        assert got == [e for r, e in zip(records, expected) if r.topic == topic]


def test_escaped_non_ascii_stays_on_the_fast_path(monkeypatch) -> None:
    raw = json.dumps({"event_id": "e1", "user_id": "Zo\u00eb", "query": "caf\u00e9 cr\u00e8me", "ts": NOW}).encode()
    expected = _parse_slow("search", raw, NOW, "default")
    monkeypatch.setattr(contracts, "_parse_slow", lambda *a: pytest.fail("took the slow path"))
    assert parse_event("searches", raw, NOW) == expected


def test_an_unknown_topic_and_an_oversized_event_are_named() -> None:
    assert parse_batch("orders", [b"{}"], NOW) == [Invalid("unknown_topic", "topic 'orders' carries no events")]
    assert parse_batch("clicks", [b" " * (contracts.MAX_EVENT_BYTES + 1)], NOW)[0].reason == "oversized"
