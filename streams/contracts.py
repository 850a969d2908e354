"""Event contracts on the wire (JSON, keyed by user id) and their validation.

`parse_event` never raises on bad input: it returns an `Invalid` carrying a reason
code (counted as a metric, written to the dead-letter topic with the raw bytes).

Two parsers, one contract: a typed msgspec decode accepts the common, valid event in
about a microsecond; anything it does not accept outright goes through the explicit
parser (`_parse_slow`), which alone decides every rejection and its reason. The fast
path may only say "valid, and here is the same Event the slow path would build"
(tests/streams/test_contracts.py fuzzes that equivalence).
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec

MAX_EVENT_BYTES = 16 * 1024          # 16 KiB: bigger payloads are a producer bug
MAX_ID_CHARS = 128
MAX_QUERY_CHARS = 512
MAX_RESULTS = 200
TS_PAST_S = 7 * 24 * 3600            # replays may lag a week
TS_FUTURE_S = 300                    # clock skew tolerated
ACTIONS = ("view", "cart", "purchase")

REASONS = ("oversized", "not_json", "not_object", "missing_field", "wrong_type",
           "unknown_action", "ts_out_of_range", "unknown_topic")


class Event(msgspec.Struct, frozen=True, gc=False):
    """A valid event. A frozen msgspec Struct: built ~15x faster than a frozen dataclass."""

    kind: str                 # "click" | "search"
    event_id: str
    user_id: str
    ts: float
    tenant: str
    item_id: str = ""         # clicks
    action: str = ""          # clicks
    query: str = ""           # searches
    results: tuple[str, ...] = ()
    session_id: str = ""
    price: float | None = None


class Invalid(msgspec.Struct, frozen=True, gc=False):
    reason: str
    detail: str


_REQUIRED = {"click": ("event_id", "user_id", "item_id", "action", "ts"),
             "search": ("event_id", "user_id", "query", "ts")}
_TOPIC_KIND = {"clicks": "click", "searches": "search"}


def _ident(value: Any, name: str) -> str | Invalid:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return Invalid("wrong_type", f"{name} must be a string or integer")
    text = str(value)
    if not text or len(text) > MAX_ID_CHARS:
        return Invalid("wrong_type", f"{name} must be 1..{MAX_ID_CHARS} characters")
    return text


def parse_event(topic: str, raw: bytes, now: float | None = None, default_tenant: str = "default") -> Event | Invalid:
    kind = _TOPIC_KIND.get(topic)
    if kind is None:
        return Invalid("unknown_topic", f"topic {topic!r} carries no events")
    if len(raw) > MAX_EVENT_BYTES:
        return Invalid("oversized", f"{len(raw)} bytes > {MAX_EVENT_BYTES}")
    now = time.time() if now is None else now
    event = _parse_fast(kind, raw, now, default_tenant)
    return _parse_slow(kind, raw, now, default_tenant) if event is None else event


# --- fast path: typed decode of the common valid event; None means "ask the slow path" ---

class _WireClick(msgspec.Struct, gc=False):
    event_id: str | int
    user_id: str | int
    item_id: str | int
    action: str
    ts: float                         # msgspec takes JSON ints here too (as float), never bools
    tenant: str = ""                  # "" and absent both mean default_tenant
    session_id: str | int = ""
    price: float | None = None


class _WireSearch(msgspec.Struct, gc=False):
    event_id: str | int
    user_id: str | int
    query: str
    ts: float
    tenant: str = ""
    session_id: str | int = ""
    results: list[str | int] | None = None


_DECODERS = {"click": msgspec.json.Decoder(_WireClick), "search": msgspec.json.Decoder(_WireSearch)}


def _fast_ident(value: str | int) -> str | None:
    text = value if value.__class__ is str else str(value)
    return text if 0 < len(text) <= MAX_ID_CHARS else None


def _parse_fast(kind: str, raw: bytes, now: float, default_tenant: str) -> Event | None:
    # msgspec skips unknown fields without checking their UTF-8, while json.loads rejects
    # the whole document: only provably clean UTF-8 may take this path.
    if not raw.isascii():
        try:
            raw.decode()
        except UnicodeDecodeError:
            return None
    try:
        wire = _DECODERS[kind].decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    event_id, user_id = _fast_ident(wire.event_id), _fast_ident(wire.user_id)
    ts, tenant = wire.ts, wire.tenant
    if (event_id is None or user_id is None or not now - TS_PAST_S <= ts <= now + TS_FUTURE_S
            or len(tenant) > MAX_ID_CHARS):
        return None
    session = wire.session_id if wire.session_id.__class__ is str else str(wire.session_id)
    tenant = tenant or default_tenant
    if kind == "click":
        item_id = _fast_ident(wire.item_id)
        price = wire.price
        if item_id is None or wire.action not in ACTIONS or (price is not None and price < 0):
            return None
        return Event("click", event_id, user_id, ts, tenant, item_id=item_id, action=wire.action,
                     session_id=session, price=price)
    query, results = wire.query, wire.results or ()
    if not query or len(query) > MAX_QUERY_CHARS or len(results) > MAX_RESULTS:
        return None
    items = tuple(map(_fast_ident, results))
    if None in items:
        return None
    return Event("search", event_id, user_id, ts, tenant, query=query, results=items, session_id=session)


# --- slow path: explicit checks in a fixed order; names the reason for every rejection ---

def _parse_slow(kind: str, raw: bytes, now: float, default_tenant: str) -> Event | Invalid:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # 16 KiB of "[" nests too deep
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
    ts = doc["ts"]
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        return Invalid("wrong_type", "ts must be unix seconds (number)")
    if not (now - TS_PAST_S <= ts <= now + TS_FUTURE_S):
        return Invalid("ts_out_of_range", f"ts {ts} not within [-{TS_PAST_S}s, +{TS_FUTURE_S}s] of now")
    tenant = doc.get("tenant", default_tenant)
    session = doc.get("session_id", "")
    if not isinstance(tenant, str) or not isinstance(session, (str, int)) or len(tenant) > MAX_ID_CHARS:
        return Invalid("wrong_type", "tenant and session_id must be strings")
    common = dict(event_id=fields["event_id"], user_id=fields["user_id"], ts=float(ts),
                  tenant=tenant or default_tenant, session_id=str(session))
    if kind == "click":
        action = doc["action"]
        if action not in ACTIONS:
            return Invalid("unknown_action", f"action {str(action)[:40]!r} not in {ACTIONS}")
        price = doc.get("price")
        if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0):
            return Invalid("wrong_type", "price must be a number >= 0")
        return Event("click", item_id=fields["item_id"], action=action,
                     price=None if price is None else float(price), **common)
    query = doc["query"]
    if not isinstance(query, str) or len(query) > MAX_QUERY_CHARS:
        return Invalid("wrong_type", f"query must be a string of at most {MAX_QUERY_CHARS} characters")
    results = doc.get("results") or []
    if not isinstance(results, list) or len(results) > MAX_RESULTS:
        return Invalid("wrong_type", f"results must be a list of at most {MAX_RESULTS} item ids")
    items = []
    for item in results:
        value = _ident(item, "results[]")
        if isinstance(value, Invalid):
            return value
        items.append(value)
    return Event("search", query=query, results=tuple(items), **common)


def query_terms(query: str) -> list[str]:
    return [t for t in query.lower().split() if t][:8]
