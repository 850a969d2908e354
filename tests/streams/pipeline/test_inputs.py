"""Scoring inputs built for a whole batch equal the same rows built one at a time."""

from __future__ import annotations

import json
from itertools import islice

import numpy as np

from reckon.streams.core.settings import Settings
from reckon.streams.costs.pricing import PriceSheet
from reckon.streams.pipeline.inputs import InputBuilder
from reckon.streams.pipeline.processor import BatchProcessor, runs_of
from reckon.streams.pipeline.user_rows import UserRows
from reckon.streams.traffic.generator import Record, TrafficGenerator


def _record(event: dict) -> Record:
    return Record("clicks" if "item_id" in event else "searches", event["user_id"].encode(),
                  json.dumps(event).encode(), True)


def test_a_batch_of_rows_equals_its_rows_built_alone(scorer) -> None:
    # Three tenants, searches, purchases, items the model never saw and users with no history:
    # every row of one batch must be what that row gives alone (no row reads another's slots).
    processor = BatchProcessor(Settings(worker_name="t", cold_start=False), PriceSheet.load(env={}),
                               lambda users: [scorer] * len(users))
    events = list(islice(TrafficGenerator(users=60, seed=11, search_fraction=0.3).sessions(), 1500))
    clicks = [e for e in events if "item_id" in e]
    events += [{**clicks[-1], "event_id": "new-1", "item_id": "never-seen", "action": "purchase"},
               {**clicks[-2], "event_id": "new-2", "action": "purchase"}]
    # a tenant whose few items are all trending: its rows get no catalog picks, others' do
    events += [{**clicks[-1], "tenant": "tiny", "event_id": f"tiny-{k}", "item_id": item}
               for k, item in enumerate([c["item_id"] for c in clicks[:3]])]
    records = [_record(e) for e in events]
    users = UserRows(lambda key, partition: None)
    for start in range(0, len(records), 200):
        processor.process(runs_of(records[start:start + 200]), users, "cpu")
    rows = [(tenant, users.state((tenant, user))) for tenant, user in list(users.row_of)]
    rows.append(("acme", {"items": [], "terms": [], "bought": []}))
    rows.append(("no-items-yet", {"items": [], "terms": ["red"], "bought": []}))   # its index knows no item
    assert {tenant for tenant, _ in rows} == {"acme", "globex", "tiny", "no-items-yet"}
    assert any(state["bought"] for _, state in rows)
    for n in (100, 7, 1):
        together = InputBuilder(n).build(rows, processor.index, scorer)
        alone = [InputBuilder(n).build([row], processor.index, scorer) for row in rows]
        for name in ("histories", "candidates", "terms"):
            assert np.array_equal(getattr(together, name), np.vstack([getattr(a, name) for a in alone])), name
        assert together.sources == [sum(counts) for counts in zip(*(a.sources for a in alone))]
        assert n < 2 or together.sources[0] > 0                                  # co-visitation
        assert n < 100 or together.sources[1] > 0                                 # query
        assert n < 100 or together.sources[4] > 0                                  # catalog
        big = [tenant not in ("tiny", "no-items-yet") for tenant, _ in rows]
        assert (together.candidates[big] > 0).all()                               # full rows
        assert not together.candidates[-1].any()                                  # none to offer


def test_no_rows_give_empty_inputs(scorer) -> None:
    processor = BatchProcessor(Settings(worker_name="t"), PriceSheet.load(env={}), lambda users: [scorer] * len(users))
    empty = InputBuilder(5).build([], processor.index, scorer)
    assert empty.histories.shape == (0, scorer.max_len) and empty.candidates.shape == (0, 5)
    assert empty.terms.shape == (0, 8) and empty.sources == [0] * 5
