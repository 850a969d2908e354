"""Per-user state: bounded lists updated in place, same JSON shape."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from reckon.streams.pipeline.contracts import Click, Search
from reckon.streams.pipeline.state import MAX_BOUGHT, MAX_ITEMS, MAX_SEEN, _fold_events, bound, fold, new_state


def test_lists_stay_bounded_newest_last_and_json_round_trips() -> None:
    state = new_state()
    state["items"] = [f"old{i}" for i in range(MAX_ITEMS + 5)]   # e.g. written by an older build
    clicks = [Click(f"e{n}", "u", f"i{n}", "purchase" if n % 2 else "view", 100.0 + n, "t")
              for n in range(MAX_SEEN + 3)]
    assert fold(state, clicks[:2]) == ["i0", "i1"]
    fold(state, clicks[2:] + [Search("s1", "u", "Red lamp red", 50.0, "t")])   # trimmed once, after the batch
    assert state["items"][-1] == f"i{MAX_SEEN + 2}" and len(state["items"]) == MAX_ITEMS
    assert state["seen"][-1] == "s1" and len(state["seen"]) == MAX_SEEN
    assert len(state["bought"]) == MAX_BOUGHT and state["bought"][-1] == f"i{MAX_SEEN + 1}"
    assert state["terms"] == ["red", "lamp", "red"] and state["last_seen"] == 100.0 + MAX_SEEN + 2
    assert json.loads(json.dumps(state)) == state
    assert set(state) == {"items", "terms", "seen", "bought", "clicks", "searches", "last_seen", "last_rec_ts"}


def test_searches_keep_their_terms_newest_last_and_count() -> None:
    state = new_state()
    fold(state, [Search("s1", "u", "red lamp", 10.0, "t"), Click("c1", "u", "i1", "view", 11.0, "t"),
                 Search("s2", "u", "Blue LAMP", 12.0, "t")])
    assert state["terms"] == ["red", "blue", "lamp"]
    assert (state["clicks"], state["searches"], state["items"], state["last_seen"]) == (1, 2, ["i1"], 12.0)
    assert state["seen"] == ["s1", "c1", "s2"]


@given(st.lists(st.tuples(st.sampled_from(["view", "cart", "purchase"]), st.integers(0, 9),
                          st.floats(0, 1000, allow_nan=False)), max_size=80))
def test_one_click_at_a_time_folds_as_the_general_path(clicks) -> None:
    """A batch with one click of a user takes a shorter path: same state, same items."""
    fast, general = new_state(), new_state()
    for n, (action, item, ts) in enumerate(clicks):
        click = Click(f"e{n}", "u", f"i{item}", action, ts, "t")
        assert fold(fast, [click]) == [click.item_id]
        assert _fold_events(general, [click]) == [click.item_id]
        bound(general)                                   # fold trims after either path
        assert fast == general
        assert len(fast["items"]) <= MAX_ITEMS and len(fast["seen"]) <= MAX_SEEN and len(fast["bought"]) <= MAX_BOUGHT
