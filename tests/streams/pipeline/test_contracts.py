"""The fast (msgspec) event parser never disagrees with the explicit one."""

from __future__ import annotations

import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st

import reckon.streams.pipeline.contracts as contracts
from reckon.streams.pipeline.contracts import Event, Invalid, _parse_slow, parse_batch, parse_event
from reckon.streams.traffic.generator import TrafficGenerator

NOW = 1_800_000_000.0

_ids = (st.text(min_size=0, max_size=130) | st.integers(-10**25, 10**25) | st.booleans() | st.none()
        | st.floats(allow_nan=False) | st.sampled_from(["u1", "i7", "e-1", "", "0", 0, 1.0]))
_numbers = (st.floats(NOW - 8 * 86400, NOW + 600) | st.integers(int(NOW) - 8 * 86400, int(NOW) + 600)
            | st.floats() | st.integers() | st.booleans() | st.none() | st.text(max_size=5))
_anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8)
_values = {
    "event_id": _ids, "user_id": _ids, "item_id": _ids, "session_id": _ids | _anything,
    "action": st.sampled_from(["view", "cart", "purchase", "View", "", "buy"]) | _anything,
    "ts": _numbers,
    "tenant": st.text(max_size=130) | st.sampled_from(["", "acme"]) | _anything,
    "price": st.none() | st.floats() | st.integers(-5, 10**30) | _anything,
    "query": st.text(max_size=520) | st.sampled_from(["", "red lamp"]) | _anything,
    "results": st.lists(_ids, max_size=4) | st.lists(st.just("i1"), min_size=199, max_size=202) | _anything,
    "zz_unknown": _anything,
}


def _member(name: str) -> st.SearchStrategy[str]:
    """One `"key": value` pair as JSON text: sometimes non-ASCII kept raw, sometimes NaN/Infinity."""
    key = st.sampled_from([json.dumps(name), json.dumps(name).replace("_", "\\u005f")])
    return st.tuples(key, _values[name], st.booleans()).map(
        lambda t: f"{t[0]}: {json.dumps(t[1], ensure_ascii=t[2])}")


@st.composite
def _documents(draw) -> bytes:
    names = draw(st.lists(st.sampled_from(sorted(_values)), max_size=14))  # repeats: duplicate keys
    text = "{" + ", ".join(draw(_member(n)) for n in names) + "}"
    raw = text.encode("utf-8", "surrogatepass")
    tweak = draw(st.sampled_from(["none"] * 6 + ["bad_utf8", "surrogate", "space", "trailing", "array"]))
    if tweak == "bad_utf8":
        raw = raw[:-1] + b', "zz": "\xff"}' if len(raw) > 2 else raw
    elif tweak == "surrogate":
        raw = raw[:-1] + b', "zz": "\xed\xa0\x80"}' if len(raw) > 2 else raw
    elif tweak == "space":
        raw = b" \n" + raw + b"\t"
    elif tweak == "trailing":
        raw = raw + b"x"
    elif tweak == "array":
        raw = b"[" + raw + b"]"
    return raw


def _valid_documents() -> st.SearchStrategy[bytes]:
    """Mostly valid events, so the comparison also covers the accepted side often."""
    click = st.fixed_dictionaries(
        {"event_id": st.text(min_size=1, max_size=8) | st.integers(0, 10**22), "user_id": st.text(min_size=1, max_size=8),
         "item_id": st.text(min_size=1, max_size=8) | st.integers(), "action": st.sampled_from(["view", "cart", "purchase"]),
         "ts": st.floats(NOW - 7 * 86400, NOW + 300) | st.integers(int(NOW) - 7 * 86400, int(NOW) + 300)},
        optional={"tenant": st.text(max_size=6), "session_id": st.text(max_size=6) | st.integers(),
                  "price": st.none() | st.floats(0, 1e6) | st.integers(0, 10**20),
                  "query": _anything, "results": _anything})
    search = st.fixed_dictionaries(
        {"event_id": st.text(min_size=1, max_size=8), "user_id": st.text(min_size=1, max_size=8) | st.integers(),
         "query": st.text(min_size=1, max_size=30), "ts": st.floats(NOW - 7 * 86400, NOW + 300)},
        optional={"tenant": st.text(max_size=6), "session_id": st.text(max_size=6),
                  "results": st.none() | st.lists(st.text(min_size=1, max_size=5) | st.integers(), max_size=6),
                  "item_id": _anything, "price": _anything})
    return (click | search).map(lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass"))


@settings(max_examples=3000, deadline=None)
@given(kind=st.sampled_from(["click", "search"]), raw=_documents() | _valid_documents() | st.binary(max_size=80))
def test_fast_path_agrees_with_the_explicit_parser(kind: str, raw: bytes) -> None:
    topic = "clicks" if kind == "click" else "searches"
    assert parse_event(topic, raw, NOW, "dflt") == _parse_slow(kind, raw, NOW, "dflt")


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["click", "search"]),
       raws=st.lists(_documents() | _valid_documents() | st.binary(max_size=80), max_size=20))
def test_a_batch_parses_each_record_on_its_own(kind: str, raws: list[bytes]) -> None:
    topic = "clicks" if kind == "click" else "searches"
    assert parse_batch(topic, raws, NOW, "dflt") == [_parse_slow(kind, raw, NOW, "dflt") for raw in raws]


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


def test_an_unknown_topic_and_an_oversized_event_are_named() -> None:
    assert parse_batch("orders", [b"{}"], NOW) == [Invalid("unknown_topic", "topic 'orders' carries no events")]
    assert parse_batch("clicks", [b" " * (contracts.MAX_EVENT_BYTES + 1)], NOW)[0].reason == "oversized"


def test_deep_nesting_is_not_json() -> None:
    result = parse_event("clicks", b"[" * 5000 + b"]" * 5000)
    assert isinstance(result, Invalid) and result.reason == "not_json"
