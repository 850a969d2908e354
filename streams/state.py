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


def apply_event(state: dict[str, Any], event: Event) -> dict[str, Any]:
    """Fold one valid event into the user's state (in place) and return it.

    Lists only grow here: `bound` trims them once per batch (a trim per event, or a copy
    of a 50-entry list, was most of this function's time)."""
    state["seen"].append(event.event_id)
    if event.ts > state["last_seen"]:
        state["last_seen"] = event.ts
    if event.kind == "click":
        state["clicks"] += 1
        state["items"].append(event.item_id)
        if event.action == "purchase":
            state["bought"].append(event.item_id)
    else:
        state["searches"] += 1
        new = query_terms(event.query)
        state["terms"] = [t for t in state["terms"] if t not in new] + new
    return state


def bound(state: dict[str, Any]) -> dict[str, Any]:
    """Trim the lists to their limits, keeping the newest (in place); returns the state."""
    for name, limit in _LIMITS:
        values = state[name]
        if len(values) > limit:
            del values[:-limit]
    return state


_LIMITS = (("items", MAX_ITEMS), ("terms", MAX_TERMS), ("seen", MAX_SEEN), ("bought", MAX_BOUGHT))


def expired(state: dict[str, Any], now: float, ttl_s: float) -> bool:
    return now - state["last_seen"] > ttl_s
