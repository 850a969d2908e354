"""Per-user state: bounded lists updated in place, same JSON shape."""

from __future__ import annotations

import json

from streams.contracts import Event
from streams.state import MAX_BOUGHT, MAX_ITEMS, MAX_SEEN, apply_event, bound, new_state


def test_lists_stay_bounded_newest_last_and_json_round_trips() -> None:
    state = new_state()
    state["items"] = [f"old{i}" for i in range(MAX_ITEMS + 5)]   # e.g. written by an older build
    for n in range(MAX_SEEN + 3):
        action = "purchase" if n % 2 else "view"
        apply_event(state, Event("click", f"e{n}", "u", 100.0 + n, "t", item_id=f"i{n}", action=action))
    apply_event(state, Event("search", "s1", "u", 50.0, "t", query="Red lamp red"))
    assert len(state["seen"]) == MAX_SEEN + 4            # lists grow within a batch ...
    bound(state)                                         # ... and are trimmed once after it
    assert state["items"][-1] == f"i{MAX_SEEN + 2}" and len(state["items"]) == MAX_ITEMS
    assert state["seen"][-1] == "s1" and len(state["seen"]) == MAX_SEEN
    assert len(state["bought"]) == MAX_BOUGHT and state["bought"][-1] == f"i{MAX_SEEN + 1}"
    assert state["terms"] == ["red", "lamp", "red"] and state["last_seen"] == 100.0 + MAX_SEEN + 2
    assert json.loads(json.dumps(state)) == state
    assert set(state) == {"items", "terms", "seen", "bought", "clicks", "searches", "last_seen", "last_rec_ts"}
