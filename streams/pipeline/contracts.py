"""Event contracts on the wire (JSON, keyed by user id) and their validation.

`parse_event` never raises on bad input: it returns an `Invalid` carrying a reason
code (counted as a metric, written to the dead-letter topic with the raw bytes).

Two parsers, one contract: a typed msgspec decode accepts the common, valid event in
about a microsecond; anything it does not accept outright goes through the explicit
parser (`_parse_slow`), which alone decides every rejection and its reason. The fast
path may only say "valid, and here is the same Event the slow path would build"
(tests/streams/pipeline/test_contracts.py fuzzes that equivalence).
"""

from __future__ import annotations

import json
import math
import re
import time
from bisect import bisect_right
from collections.abc import Collection
from itertools import accumulate
from typing import Annotated, Any, ClassVar, Literal

import msgspec
import numpy as np

from reckon.streams.core.ids import MAX_ID_CHARS

MAX_EVENT_BYTES = 16 * 1024          # 16 KiB: bigger payloads are a producer bug
MAX_QUERY_CHARS = 512
MAX_RESULTS = 200
MAX_DEPTH = 256                      # JSON nesting; both parsers follow ~990 levels (the recursion limit)
MAX_PRICE = 1_000_000_000.0          # clicks_log.price is Decimal64(6): 12 integer digits
TS_PAST_S = 7 * 24 * 3600            # replays may lag a week
TS_FUTURE_S = 300                    # clock skew tolerated
ACTIONS = ("view", "cart", "purchase")

REASONS = ("no_value", "oversized", "not_utf8", "not_json", "too_deep", "not_object", "missing_field", "wrong_type",
           "too_long", "bad_text", "not_finite", "unknown_action", "ts_out_of_range", "price_out_of_range",
           "unknown_tenant", "unknown_topic")


_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]   # JSON ints: slow path
_Text = Annotated[str, msgspec.Meta(max_length=MAX_ID_CHARS)]              # "" or absent: the default


# The valid events, and the types msgspec decodes the wire into: the common valid event is
# one decode, no second object (building one per event cost a third of parsing). Mutable
# only so that parsing can fill in the default tenant; nothing changes them afterwards.

class Click(msgspec.Struct, gc=False):
    kind: ClassVar[str] = "click"
    event_id: _Id
    user_id: _Id
    item_id: _Id
    action: Literal[ACTIONS]            # type: ignore[valid-type]
    ts: float                           # unix seconds; msgspec takes JSON ints too, never bools
    tenant: _Text = ""
    session_id: _Text = ""
    price: Annotated[float, msgspec.Meta(ge=0, le=MAX_PRICE)] | None = None


class Search(msgspec.Struct, gc=False):
    kind: ClassVar[str] = "search"
    event_id: _Id
    user_id: _Id
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_QUERY_CHARS)]
    ts: float
    tenant: _Text = ""
    session_id: _Text = ""
    results: Annotated[tuple[_Id, ...], msgspec.Meta(max_length=MAX_RESULTS)] = ()


Event = Click | Search


class Invalid(msgspec.Struct, frozen=True, gc=False):
    reason: str
    detail: str


_REQUIRED = {"click": ("event_id", "user_id", "item_id", "action", "ts"),
             "search": ("event_id", "user_id", "query", "ts")}
_TOPIC_KIND = {"clicks": "click", "searches": "search"}
# Free text (a query) may hold tabs and line breaks, never other controls or lone surrogates
# (JSON escapes can carry both; neither can be encoded as UTF-8 or shown).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def parse_event(topic: str, raw: bytes, now: float | None = None, default_tenant: str = "default",
                tenants: Collection[str] | None = None) -> Event | Invalid:
    return parse_batch(topic, [raw], time.time() if now is None else now, default_tenant, tenants)[0]


def parse_batch(topic: str, values: list[bytes | None], now: float, default_tenant: str = "default",
                tenants: Collection[str] | None = None) -> list[Event | Invalid]:
    """One topic's record values -> one Event or Invalid each, in order. `tenants`: the
    tenants accepted (None: any).

    The common valid event is decoded by msgspec straight into its Click or Search, whose
    constraints (ids 1..128 characters, known actions, 0 <= price <= MAX_PRICE, ...) are the
    contract's; anything it does not take outright (ints for ids, a wrong field, non-UTF-8,
    ...) goes through the explicit parser, which alone names rejections. One loop for the
    batch: a function call per event was a third of parsing.
    """
    kind = _TOPIC_KIND.get(topic)
    if kind is None:
        return [Invalid("unknown_topic", f"topic {topic!r} carries no events")] * len(values)
    if None in values:      # a record with a null value (a tombstone) carries no event
        nulls = [i for i, raw in enumerate(values) if raw is None]
        out = parse_batch(topic, [b"" if raw is None else raw for raw in values], now, default_tenant, tenants)
        for i in nulls:
            out[i] = Invalid("no_value", "the record has no value (a tombstone)")
        return out
    decode = _DECODERS[kind]
    lo, hi = now - TS_PAST_S, now + TS_FUTURE_S
    out: list[Event | Invalid] = []
    append = out.append
    limit, shallow = MAX_EVENT_BYTES, 2 * MAX_DEPTH
    for raw in values:
        # msgspec skips unknown fields without checking their UTF-8, while the contract rejects
        # the whole document: only ASCII takes this path. Nesting deeper than MAX_DEPTH needs
        # more than 2 * MAX_DEPTH bytes, so only longer events have their brackets counted.
        size = len(raw)
        if size <= limit and raw.isascii() and (
                size <= shallow or raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH):
            try:
                event = decode(raw)
            except (msgspec.DecodeError, RecursionError):
                event = None
            if event is not None and lo <= event.ts <= hi:
                if not event.tenant:
                    event.tenant = default_tenant
                if tenants is None or event.tenant in tenants:
                    append(event)
                    continue
        append(_parse_slow(kind, raw, now, default_tenant, tenants) if size <= limit
               else Invalid("oversized", f"{size} bytes > {limit}"))
    # Escape-free ASCII strings are printable but for DEL: only events whose JSON holds an
    # escape or a DEL need their strings looked at (found for the whole batch at once).
    for i in _escaped(values):
        event = out[i]
        if event.__class__ is not Invalid and not _printable(event):
            out[i] = _parse_slow(kind, values[i], now, default_tenant, tenants)
    return out


_DECODERS = {"click": msgspec.json.Decoder(Click).decode, "search": msgspec.json.Decoder(Search).decode}


def _escaped(values: list[bytes]) -> set[int]:
    """Which values hold a backslash or a DEL: two memchr scans of the batch joined (a
    scan per event cost more than its decode), then a jump to each hit's record."""
    joined = b"".join(values)
    hits: set[int] = set()
    ends: list[int] = []
    for needle in (b"\\", b"\x7f"):
        at = joined.find(needle)
        if at >= 0 and not ends:
            ends = list(accumulate(map(len, values)))
        while at >= 0:
            i = bisect_right(ends, at)
            hits.add(i)
            at = joined.find(needle, ends[i])
    return hits


def _printable(event: Event) -> bool:
    """The fast path's look at an event whose JSON had escapes: every id printable, the
    query free of controls. Saying no only sends the event to the slow path."""
    ids = [event.event_id, event.user_id, event.tenant, event.session_id]
    if event.kind == "click":
        ids.append(event.item_id)
    else:
        if _BAD_TEXT.search(event.query):
            return False
        ids += event.results
    return all([i.isprintable() for i in ids])


# --- slow path: explicit checks in a fixed order; names the reason for every rejection ---

def _parse_slow(kind: str, raw: bytes, now: float, default_tenant: str,
                tenants: Collection[str] | None = None) -> Event | Invalid:
    try:
        text = raw.decode("utf-8")    # strict: lone surrogates (CESU-8), overlong forms, UTF-16 all fail
    except UnicodeDecodeError as exc:
        return Invalid("not_utf8", str(exc)[:200])
    # Nesting first, from the text: past ~990 levels json.loads fails at a depth that
    # depends on the caller's stack, so its verdict on such a document would not be fixed.
    if text.count("[") + text.count("{") > MAX_DEPTH and _nesting(text) > MAX_DEPTH:
        return Invalid("too_deep", f"nested deeper than {MAX_DEPTH} levels")
    try:
        doc = json_document(text)
    except ValueError as exc:
        return Invalid("not_json", str(exc)[:200])
    if not isinstance(doc, dict):
        return Invalid("not_object", f"got {type(doc).__name__}")
    missing = [f for f in _REQUIRED[kind] if doc.get(f) in (None, "")]
    if missing:
        return Invalid("missing_field", ", ".join(missing))
    fields: dict[str, Any] = {}
    for name in ("event_id", "user_id") + (("item_id",) if kind == "click" else ()):
        value = _ident(doc[name], name)
        if isinstance(value, Invalid):
            return value
        fields[name] = value
    ts = _number(doc["ts"], "ts")
    if isinstance(ts, Invalid):
        return ts
    if not (now - TS_PAST_S <= ts <= now + TS_FUTURE_S):
        return Invalid("ts_out_of_range", f"ts {str(ts)[:40]} not within [-{TS_PAST_S}s, +{TS_FUTURE_S}s] of now")
    tenant = doc.get("tenant", "")
    if not isinstance(tenant, str):
        return Invalid("wrong_type", "tenant must be a string")
    tenant = _ident(tenant, "tenant") if tenant else default_tenant
    if isinstance(tenant, Invalid):
        return tenant
    if tenants is not None and tenant not in tenants:
        return Invalid("unknown_tenant", f"tenant {tenant[:40]!r} is not served here")
    session = doc.get("session_id", "")
    session = _ident(session, "session_id") if session != "" else ""
    if isinstance(session, Invalid):
        return session
    common = dict(event_id=fields["event_id"], user_id=fields["user_id"], ts=float(ts), tenant=tenant,
                  session_id=session)
    if kind == "click":
        action = doc["action"]
        if action not in ACTIONS:
            return Invalid("unknown_action", f"action {str(action)[:40]!r} not in {ACTIONS}")
        price = doc.get("price")
        if price is not None:
            price = _number(price, "price")
            if isinstance(price, Invalid):
                return price
            if not 0 <= price <= MAX_PRICE:
                return Invalid("price_out_of_range", f"price {str(price)[:40]} not within [0, {MAX_PRICE:.0f}]")
        return Click(item_id=fields["item_id"], action=action, price=None if price is None else float(price),
                     **common)
    query = doc["query"]
    if not isinstance(query, str):
        return Invalid("wrong_type", "query must be a string")
    if len(query) > MAX_QUERY_CHARS:
        return Invalid("too_long", f"query has {len(query)} characters > {MAX_QUERY_CHARS}")
    if _BAD_TEXT.search(query):
        return Invalid("bad_text", "query holds a control character or a lone surrogate")
    results = doc.get("results") or []
    if not isinstance(results, list):
        return Invalid("wrong_type", "results must be a list of item ids")
    if len(results) > MAX_RESULTS:
        return Invalid("too_long", f"results has {len(results)} items > {MAX_RESULTS}")
    items = []
    for item in results:
        value = _ident(item, "results[]")
        if isinstance(value, Invalid):
            return value
        items.append(value)
    return Search(query=query, results=tuple(items), **common)


class HugeInt(str):
    """A JSON integer too long for Python's int (over 4,300 digits), kept as its digits: valid
    JSON, so an event holding one where the contract does not look is as valid as msgspec's
    fast path finds it; as an id it is too long, as a number out of range."""


def _integer(digits: str) -> int | HugeInt:
    return int(digits) if len(digits) <= 4300 else HugeInt(digits)


def json_document(text: str | bytes) -> Any:
    """JSON as the contract reads it: the standard library's parser, any integer accepted."""
    return json.loads(text, parse_int=_integer)


def _ident(value: Any, name: str) -> str | Invalid:
    """An id as the contract holds it: a JSON string or integer, 1..MAX_ID_CHARS printable
    characters (no controls, invisible format characters, lone surrogates or separators
    but the ASCII space)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return Invalid("wrong_type", f"{name} must be a string or integer")
    text = str(value)     # a HugeInt's digits: too long
    if not text:
        return Invalid("missing_field", name)
    if len(text) > MAX_ID_CHARS:
        return Invalid("too_long", f"{name} has {len(text)} characters > {MAX_ID_CHARS}")
    if not text.isprintable():
        return Invalid("bad_text", f"{name} holds a control, invisible or unpaired surrogate character")
    return text


def _number(value: Any, name: str) -> int | float | Invalid:
    if value.__class__ is HugeInt:
        return Invalid(f"{name}_out_of_range", f"{name} is an integer of {len(value)} digits")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Invalid("wrong_type", f"{name} must be a number")
    if isinstance(value, float) and not math.isfinite(value):   # NaN, Infinity, 1e400
        return Invalid("not_finite", f"{name} is {value}")
    return value


def _nesting(text: str) -> int:
    """How deeply brackets nest in JSON text, strings left out, without parsing it (in
    numpy: a 16 KiB bracket bomb costs tens of microseconds, not a Python loop)."""
    brackets = np.frombuffer(_NOT_BRACKET.sub("", _STRING.sub("", text)).encode(), dtype=np.uint8)
    if not len(brackets):
        return 0
    return int(np.cumsum(np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)).max())


def query_terms(query: str) -> list[str]:
    return [t for t in query.lower().split() if t][:8]
