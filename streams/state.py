"""Per-user state kept in a Faust Table: recent items, query terms, counters, seen ids.

Stored as a small JSON-able dict so the changelog stays readable and versionable.
Bounded per user; `expired` lets a timer drop users idle for too long.
"""

from __future__ import annotations

from typing import Any

from streams.contracts import Event, query_terms

MAX_ITEMS = 50
MAX_TERMS = 16
MAX_SEEN = 64        # duplicate window: a user's last 64 event ids
MAX_BOUGHT = 20


def new_state() -> dict[str, Any]:
    return {"items": [], "terms": [], "seen": [], "bought": [], "clicks": 0, "searches": 0,
            "last_seen": 0.0, "last_rec_ts": 0.0}


def is_duplicate(state: dict[str, Any], event_id: str) -> bool:
    return event_id in state["seen"]


def apply_event(state: dict[str, Any], event: Event) -> dict[str, Any]:
    """Fold one valid event into the user's state (in place) and return it.

    Lists are updated in place (append, then trim the front): a copy per event of a
    50-entry list was most of this function's time."""
    _push(state["seen"], event.event_id, MAX_SEEN)
    if event.ts > state["last_seen"]:
        state["last_seen"] = event.ts
    if event.kind == "click":
        state["clicks"] += 1
        _push(state["items"], event.item_id, MAX_ITEMS)
        if event.action == "purchase":
            _push(state["bought"], event.item_id, MAX_BOUGHT)
    else:
        state["searches"] += 1
        new = query_terms(event.query)
        terms = [t for t in state["terms"] if t not in new] + new
        state["terms"] = terms[-MAX_TERMS:]
    return state


def _push(values: list, value: Any, limit: int) -> None:
    values.append(value)
    if len(values) > limit:
        del values[:-limit]


def expired(state: dict[str, Any], now: float, ttl_s: float) -> bool:
    return now - state["last_seen"] > ttl_s
