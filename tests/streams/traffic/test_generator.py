"""Generated traffic: deterministic per seed; drift shifts popularity and adds items mid-run."""

from __future__ import annotations

from collections import Counter
from itertools import islice

import pytest

from reckon.streams.traffic.generator import Catalog, Drift, TrafficGenerator


def _clicks(events: list[dict]) -> list[int]:
    return [int(e["item_id"][1:]) for e in events if "item_id" in e]


def test_same_seed_same_events_and_no_drift_by_default() -> None:
    a = list(islice(TrafficGenerator(seed=3).sessions(), 500))
    b = list(islice(TrafficGenerator(seed=3).sessions(), 500))
    def untimed(events: list[dict]) -> list[dict]:
        return [{k: v for k, v in e.items() if k != "ts"} for e in events]

    assert untimed(a) == untimed(b)
    assert max(_clicks(list(islice(TrafficGenerator(seed=3).sessions(), 5000)))) < Catalog().items


def test_drift_adds_items_and_moves_popularity_from_its_event_on() -> None:
    catalog = Catalog(items=600, categories=20)
    gen = TrafficGenerator(seed=4, catalog=catalog, drift=Drift(at=3000, new_items=60, shift=150))
    events = list(islice(gen.sessions(), 6000))
    # a session in progress finishes first; everything after the next session start is drifted
    before, after = _clicks(events[:3000]), _clicks(events[3020:])
    assert max(before) < 600 and gen.drifted
    new = [i for i in after if i >= 600]
    assert set(new) <= set(range(600, 660)) and 0.2 < len(new) / len(after) < 0.6
    top_before = {i for i, _ in Counter(before).most_common(3)}
    top_after = {i for i, _ in Counter(i for i in after if i < 600).most_common(3)}
    assert top_before.isdisjoint(top_after)                       # the old head sank
    # new items follow the catalog's transitions: they are clicked next to old items of their category
    pairs = list(zip(after, after[1:]))
    assert any(a >= 600 > b and a % 20 == b % 20 for a, b in pairs)


def test_drift_ranking_and_validation() -> None:
    assert Drift(at=0, new_items=2, shift=1).ranking(4) == [4, 1, 5, 2, 3, 0]
    assert Drift(at=0, new_items=0, shift=0).ranking(3) == [0, 1, 2]
    with pytest.raises(ValueError, match=">= 0"):
        Drift(at=-1)
