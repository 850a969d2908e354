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
    """Fold one valid event into the user's state (in place) and return it."""
    state["seen"] = (state["seen"] + [event.event_id])[-MAX_SEEN:]
    state["last_seen"] = max(state["last_seen"], event.ts)
    if event.kind == "click":
        state["clicks"] += 1
        state["items"] = (state["items"] + [event.item_id])[-MAX_ITEMS:]
        if event.action == "purchase":
            state["bought"] = (state["bought"] + [event.item_id])[-MAX_BOUGHT:]
    else:
        state["searches"] += 1
        terms = [t for t in state["terms"] if t not in query_terms(event.query)]
        state["terms"] = (terms + query_terms(event.query))[-MAX_TERMS:]
    return state


def expired(state: dict[str, Any], now: float, ttl_s: float) -> bool:
    return now - state["last_seen"] > ttl_s
