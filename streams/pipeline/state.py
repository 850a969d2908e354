"""Per-(tenant, user) state kept in a Faust Table: recent items, query terms, counters, seen ids.

Stored as a small JSON-able dict so the changelog stays readable and versionable.
Bounded per user; a user idle for longer than `RECKON_USER_TTL_S` starts over (the processor).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reckon.streams.pipeline.contracts import Event, query_terms

MAX_ITEMS = 50
MAX_TERMS = 16
MAX_SEEN = 64        # duplicate window: a user's last 64 event ids
MAX_BOUGHT = 20


def new_state() -> dict[str, Any]:
    return {"items": [], "terms": [], "seen": [], "bought": [], "clicks": 0, "searches": 0,
            "last_seen": 0.0, "last_rec_ts": 0.0}


def fold(state: dict[str, Any], events: Sequence[Event]) -> list[str]:
    """Fold one user's new events of a batch (valid, not seen before, in order) into its
    state, in place, its lists trimmed to their limits; returns the items clicked, in order.

    A batch's events of one user go in together, as whole-list operations (an event at a
    time was most of the worker's time)."""
    if len(events) == 1 and events[0].kind == "click":
        items = _fold_click(state, events[0])    # live traffic: mostly one click per user per batch
    else:
        items = _fold_events(state, events)
    bound(state)
    return items


def _fold_events(state: dict[str, Any], events: Sequence[Event]) -> list[str]:
    state["seen"] += [e.event_id for e in events]
    newest = max([e.ts for e in events])
    if newest > state["last_seen"]:
        state["last_seen"] = newest
    clicks = [e for e in events if e.kind == "click"]
    items = [e.item_id for e in clicks]
    if items:
        state["items"] += items
        state["clicks"] += len(items)
        state["bought"] += [e.item_id for e in clicks if e.action == "purchase"]
    if len(clicks) < len(events):
        terms = state["terms"]
        for search in events:
            if search.kind == "search":
                new = query_terms(search.query)
                terms = [t for t in terms if t not in new] + new
        state["terms"] = terms
        state["searches"] += len(events) - len(clicks)
    return items


def _fold_click(state: dict[str, Any], click: Event) -> list[str]:
    """`fold` of a single click, without the lists a batch of several events needs."""
    state["seen"].append(click.event_id)
    if click.ts > state["last_seen"]:
        state["last_seen"] = click.ts
    state["items"].append(click.item_id)
    state["clicks"] += 1
    if click.action == "purchase":
        state["bought"].append(click.item_id)
    return [click.item_id]


def bound(state: dict[str, Any]) -> dict[str, Any]:
    """Trim the lists to their limits, keeping the newest (in place); returns the state."""
    for name, limit in _LIMITS:
        values = state[name]
        if len(values) > limit:
            del values[:-limit]
    return state


_LIMITS = (("items", MAX_ITEMS), ("terms", MAX_TERMS), ("seen", MAX_SEEN), ("bought", MAX_BOUGHT))


KEY_SEP = "\x1f"     # the contract refuses controls in ids, so no tenant or user id holds it


def state_key(tenant: str, user: str) -> bytes:
    """A user's state key (RocksDB and the changelog): a user id is unique only within its
    tenant. Strict UTF-8: an id that cannot be encoded fails here, before any state changes."""
    return f"{tenant}{KEY_SEP}{user}".encode()
