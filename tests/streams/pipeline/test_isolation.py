"""A record that fails after validation is dead-lettered alone, at the stage that failed, and
its batch goes on; tenants never see each other's history or items. The real ONNX scorer;
failures are injected where no valid record could cause one."""

from __future__ import annotations

import json
import time
from itertools import islice

import numpy as np
import pytest

import reckon.streams.pipeline.contracts as contracts
import reckon.streams.pipeline.processor as processor_module
import reckon.streams.pipeline.scoring as scoring_module
from reckon.models.core.errors import ScorerError
from reckon.streams.core.settings import Settings
from reckon.streams.costs.pricing import PriceSheet
from reckon.streams.pipeline.dead_letters import STAGES
from reckon.streams.pipeline.processor import BatchProcessor, SystemicFailure, runs_of
from reckon.streams.pipeline.state import state_key
from reckon.streams.pipeline.user_rows import UserRows
from reckon.streams.traffic.generator import Record, TrafficGenerator

from ..kafka_io import click


def _processor(scorer, **settings) -> BatchProcessor:
    return BatchProcessor(Settings(worker_name="t", **settings), PriceSheet.load(env={}), lambda users: [scorer] * len(users))


def _accounted(out, n: int) -> None:
    dead = sum(v for k, v in out.counts.items() if k.startswith("invalid:"))
    assert out.counts["valid"] + out.counts["duplicate"] + dead == n
    assert len(out.dead_letters) == dead
    assert out.counts["recommendations"] == len(out.recommendations)


class PoisonScorer:
    """The real scorer, failing any call whose histories hold `poison` (a model index)."""

    def __init__(self, scorer, poison: int, test_row_fails: bool = False) -> None:
        self.scorer, self.poison, self.test_row_fails, self.calls = scorer, poison, test_row_fails, 0

    def __getattr__(self, name: str):
        return getattr(self.scorer, name)

    def score(self, histories, candidates, terms=None, usage=None):
        self.calls += 1
        if (np.asarray(histories) == self.poison).any():
            raise ScorerError("[test] onnxruntime failed")
        return self.scorer.score(histories, candidates, terms, usage=usage)

    def check(self) -> None:
        if self.test_row_fails:
            raise ScorerError("[test] the device is gone")
        self.scorer.check()


def _nothing_stored() -> UserRows:
    return UserRows(lambda key, partition: None)


def test_a_state_that_cannot_be_read_dead_letters_only_its_users_records(scorer) -> None:
    processor = _processor(scorer)
    records = [click(f"e{i}", f"u{i % 5}", f"i{i}") for i in range(20)]
    bad = state_key("acme", "u3")

    def load(key: bytes, partition: int | None):
        if key == bad:
            raise ValueError("[test] a stored state that does not decode")
        return None

    users = UserRows(load)
    out = processor.process(runs_of(records, partition=2), users, "cpu")
    _accounted(out, 20)
    assert out.counts["invalid:state_failed"] == 4 and out.counts["valid"] == 16
    assert {(d.stage, d.topic, d.partition) for d in out.dead_letters} == {("state", "clicks", 2)}
    assert sorted(d.offset for d in out.dead_letters) == [3, 8, 13, 18]          # where they were read
    assert {d.value for d in out.dead_letters} == {records[i].value for i in (3, 8, 13, 18)}
    changed = {users.key(row) for row in out.changed.tolist()}
    assert bad not in changed and len(changed) == 4 and ("acme", "u3") not in users.row_of


def test_an_event_the_fold_cannot_take_is_dead_lettered_alone(scorer, monkeypatch) -> None:
    real = processor_module.id_hashes

    def hashes(ids):
        if any("boom" in i for i in ids):
            raise ValueError("[test] cannot hash")
        return real(ids)

    monkeypatch.setattr(processor_module, "id_hashes", hashes)
    records = [click("e-boom" if i == 3 else f"e{i}", f"u{i % 2}", f"i{i}") for i in range(6)]
    users = _nothing_stored()
    out = _processor(scorer, trigger="none").process(runs_of(records), users, "cpu")
    _accounted(out, 6)
    assert [(d.reason, d.offset) for d in out.dead_letters] == [("state_failed", 3)]
    assert users.state(("acme", "u1"))["items"] == ["i1", "i5"]      # u1's other events went in


def test_a_failing_scoring_call_is_split_until_the_failing_rows_are_found(scorer) -> None:
    poison_item = "i5"
    poisoned = PoisonScorer(scorer, scorer.item_index(poison_item))
    processor = _processor(poisoned)
    now = time.time()
    users = [f"u{n}" for n in range(64)]
    records = [click(f"e-{u}", u, poison_item if u in ("u7", "u40") else "i9", ts=now) for u in users]
    users = _nothing_stored()
    out = processor.process(runs_of(records), users, "cpu")
    _accounted(out, 64)
    assert out.counts["invalid:score_failed"] == 2 and out.counts["recommendations"] == 62
    assert {d.value for d in out.dead_letters} == {records[7].value, records[40].value}
    assert {d.stage for d in out.dead_letters} == {"score"} and "onnxruntime failed" in out.dead_letters[0].detail
    assert 2 < poisoned.calls <= 2 * 2 * 6 + 1                  # halves down to the two rows, not one per row
    # the two still have their state (their events are folded: only the recommendation is missing)
    assert state_key("acme", "u7") in {users.key(row) for row in out.changed.tolist()}
    lines = out.cost_event["lines"]
    assert sum(line["events"] for line in lines) == out.counts["valid"] == 62
    assert sum(line["recommendations"] for line in lines) == 62


def test_every_row_failing_with_a_model_that_scores_its_test_row_dead_letters_them(scorer) -> None:
    poisoned = PoisonScorer(scorer, scorer.item_index("i5"))
    out = _processor(poisoned).process(runs_of([click("e1", "u1", "i5"), click("e2", "u2", "i5")]),
                                       _nothing_stored(), "cpu")
    _accounted(out, 2)
    assert out.counts["invalid:score_failed"] == 2 and out.recommendations == []


def test_a_model_that_fails_its_own_test_row_is_systemic(scorer) -> None:
    broken = PoisonScorer(scorer, scorer.item_index("i5"), test_row_fails=True)
    with pytest.raises(SystemicFailure, match="the device is gone"):
        _processor(broken).process(runs_of([click("e1", "u1", "i5")]), _nothing_stored(), "cpu")


def test_a_recommendation_that_cannot_be_encoded_is_dead_lettered_alone(scorer, monkeypatch) -> None:
    real = scoring_module._encode

    def encode(doc: dict) -> bytes:
        if doc.get("trigger_event_id") == "e3":
            raise TypeError("[test] cannot encode")
        return real(doc)

    monkeypatch.setattr(scoring_module, "_encode", encode)
    out = _processor(scorer).process(runs_of([click(f"e{i}", f"u{i}", "i1") for i in range(6)]),
                                     _nothing_stored(), "cpu")
    _accounted(out, 6)
    assert [(d.reason, d.stage) for d in out.dead_letters] == [("publish_failed", "publish")]
    assert sorted(json.loads(v)["trigger_event_id"] for _, v in out.recommendations) == ["e0", "e1", "e2", "e4", "e5"]


def test_a_parser_failure_dead_letters_the_record_it_fails_on(scorer, monkeypatch) -> None:
    real = contracts.parse_batch

    def parse(topic, values, *args):
        if any(b"boom" in v for v in values):
            raise RecursionError("[test] the parser broke")
        return real(topic, values, *args)

    monkeypatch.setattr(processor_module, "parse_batch", parse)
    records = [click(f"e{i}", f"u{i}", "boom" if i == 2 else "i1") for i in range(5)]
    out = _processor(scorer).process(runs_of(records), _nothing_stored(), "cpu")
    _accounted(out, 5)
    assert [(d.reason, d.stage, d.offset) for d in out.dead_letters] == [("parse_failed", "contract", 2)]


def test_dead_letter_headers_always_encode() -> None:
    from reckon.streams.pipeline.dead_letters import DeadLetter

    dead = DeadLetter(None, b"\xff", "clicks", 3, 17, "state_failed", "UnicodeEncodeError: '\ud800' \x00 " * 40)
    headers = dict(dead.headers())
    assert headers["stage"] == b"state" and headers["partition"] == b"3" and headers["offset"] == b"17"
    assert len(headers["detail"].decode()) <= 2000 and set(STAGES.values()) >= {"contract", "sink_insert"}


def _tenant_traffic(tenant: str, seed: int, n: int) -> list[Record]:
    return list(islice(TrafficGenerator(seed=seed, tenants=(tenant,), users=60).records(n), n))


@pytest.mark.parametrize("cold_start", [False, True])
def test_tenants_with_the_same_user_and_item_ids_never_see_each_others_history_or_items(
        registry_dir, cold_start: bool) -> None:
    from reckon.models.core.registry import Registry
    from reckon.models.serving.scorer import Scorer

    def scorer():   # one per processor: cold start writes into its scorer's item table
        return Scorer.load(Registry(registry_dir).current(), device="cpu", variant="fp32")  # exact per row

    acme, globex = _tenant_traffic("acme", 21, 1600), _tenant_traffic("globex", 22, 1600)
    users = {json.loads(r.value)["user_id"] for r in acme} & {json.loads(r.value)["user_id"] for r in globex}
    items = {json.loads(r.value).get("item_id") for r in acme} & {json.loads(r.value).get("item_id") for r in globex}
    assert len(users) > 30 and len(items) > 30                  # the same ids, under two tenants
    both, alone = _processor(scorer(), cold_start=cold_start), _processor(scorer(), cold_start=cold_start)
    both_users, alone_users = _nothing_stored(), _nothing_stored()
    recs_both: list = []
    recs_alone: list = []
    for start in range(0, 1600, 200):
        mixed = [r for pair in zip(acme[start:start + 200], globex[start:start + 200]) for r in pair]
        out = both.process(runs_of(mixed), both_users, "cpu")
        recs_both += [json.loads(v) for _, v in out.recommendations]
        out = alone.process(runs_of(globex[start:start + 200]), alone_users, "cpu")
        recs_alone += [json.loads(v) for _, v in out.recommendations]
    # globex's states and candidate statistics are what they would be had acme never existed
    globex_users = sorted(user for user in both_users.row_of if user[0] == "globex")
    assert globex_users == sorted(alone_users.row_of)
    assert [both_users.state(user) for user in globex_users] == [alone_users.state(user) for user in globex_users]
    assert both.index("globex").item_names() == alone.index("globex").item_names()
    # ... and its recommendations hold only items its own events have shown
    shown = {i for r in globex for d in [json.loads(r.value)] for i in [d.get("item_id"), *d.get("results", [])]}
    assert {i for r in recs_both if r["tenant"] == "globex" for i in r["items"]} <= shown
    if not cold_start:   # cold-start rows live in the one model both serve (README: tenancy)
        globex_recs = [(r["trigger_event_id"], r["items"]) for r in recs_both if r["tenant"] == "globex"]
        assert globex_recs == [(r["trigger_event_id"], r["items"]) for r in recs_alone]
