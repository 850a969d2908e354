"""The batch processor with the real ONNX scorer (no broker needed)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import zlib
from decimal import Decimal

import numpy as np
import pytest

from reckon.streams.core.settings import Settings
from reckon.streams.costs.pricing import PriceSheet
from reckon.streams.pipeline.contracts import parse_event
from reckon.streams.pipeline.processor import BatchProcessor, InRecord, runs_of
from reckon.streams.pipeline.state import MAX_ITEMS, state_key
from reckon.streams.pipeline.user_rows import UserRows
from reckon.streams.traffic.generator import TrafficGenerator

from ..kafka_io import click, search


def _processor(scorer, **settings) -> BatchProcessor:
    return BatchProcessor(Settings(worker_name="t", **settings), PriceSheet.load(env={}), lambda users: [scorer] * len(users))


def _users(stored: dict | None = None) -> UserRows:
    """Users' rows over a dict of stored values (by state key), as `process` reads them."""
    stored = {} if stored is None else stored
    return UserRows(lambda key, partition: stored.get(key))


def _process(processor, runs, users: UserRows):
    out = processor.process(runs, users, "cpu")
    users.stage(out.changed, out.changed_partitions)
    return out


def _run(processor, records, users: UserRows) -> list:
    return [_process(processor, runs_of(records[start:start + 128]), users) for start in range(0, len(records), 128)]


def test_batch_scoring_equals_one_by_one(registry_dir) -> None:
    # fp32: exact. int8 dynamic quantization picks activation scales per call, so a row's
    # scores shift slightly with its batch-mates; its test below bounds that.
    from reckon.models.core.registry import Registry
    from reckon.models.serving.scorer import Scorer

    scorer = Scorer.load(Registry(registry_dir).current(), device="cpu", variant="fp32")
    rng = np.random.default_rng(0)
    histories = rng.integers(0, scorer.num_items + 1, size=(16, scorer.max_len))
    candidates = rng.integers(1, scorer.num_items + 1, size=(16, 40))
    terms = np.zeros((16, 8), dtype=np.int64)
    batch = scorer.score(histories, candidates, terms)
    single = np.vstack([scorer.score(histories[i:i + 1], candidates[i:i + 1], terms[i:i + 1])
                        for i in range(16)])
    np.testing.assert_allclose(batch, single, rtol=1e-4, atol=1e-4)


def test_int8_batch_scores_stay_close_to_one_by_one(scorer) -> None:
    rng = np.random.default_rng(1)
    histories = rng.integers(0, scorer.num_items + 1, size=(32, scorer.max_len))
    candidates = rng.integers(1, scorer.num_items + 1, size=(32, 100))
    batch = scorer.score(histories, candidates)
    single = np.vstack([scorer.score(histories[i:i + 1], candidates[i:i + 1]) for i in range(32)])
    top_batch = np.argsort(-batch, axis=1)[:, :10]
    top_single = np.argsort(-single, axis=1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_batch, top_single)])
    assert overlap >= 0.9


def test_each_candidate_source_contributes(scorer) -> None:
    processor = _processor(scorer)
    traffic = list(TrafficGenerator(seed=11).records(3000))
    outs = _run(processor, traffic, _users())
    sources = {k.split(":", 1)[1] for out in outs for k in out.counts if k.startswith("candidate:")}
    assert {"covisit", "query", "trending", "embedding"} <= sources


def test_recommendations_exclude_purchases_and_carry_their_trigger(scorer) -> None:
    processor = _processor(scorer)
    users = _users()
    _run(processor, list(TrafficGenerator(seed=2).records(1500)), users)
    bought = "i1"
    out = _process(processor, runs_of([click("p1", "u-buyer", bought, action="purchase"),
                                       search("p2", "u-buyer", "red lamp", ["i2", "i3"])]), users)
    (rec,) = [json.loads(v) for _, v in out.recommendations]    # one user, one batch: one output
    assert (rec["trigger_event_id"], rec["triggers"]) == ("p2", 2)  # the latest event, answering both
    assert bought not in rec["items"] and len(rec["items"]) == 10
    assert rec["scores"] == sorted(rec["scores"], reverse=True)


def test_duplicates_dropped_and_state_bounded(scorer) -> None:
    processor = _processor(scorer)
    users = _users()
    events = [click(f"d{i}", "u-dup", f"i{i}") for i in range(MAX_ITEMS + 10)]
    first = _process(processor, runs_of(events), users)
    again = _process(processor, runs_of(events[-5:]), users)
    assert first.counts["valid"] == MAX_ITEMS + 10 and again.counts["duplicate"] == 5
    assert users.state(("acme", "u-dup"))["items"] == [f"i{i}" for i in range(10, MAX_ITEMS + 10)]
    assert again.recommendations == [] and not len(again.changed)
    # a user's only event in a batch: a redelivery is still dropped, and so after a restart
    stored = {key: value for values in users.snapshot().values() for key, value in values}
    once = _process(processor, runs_of(events[-1:]), _users(stored))
    assert once.counts["duplicate"] == 1 and not len(once.changed) and once.recommendations == []


def test_cost_event_splits_the_whole_batch(scorer) -> None:
    processor = _processor(scorer)
    out = _process(processor, runs_of(TrafficGenerator(seed=4).records(400)), _users())
    event = out.cost_event
    lines = event["lines"]
    assert {line["tenant"] for line in lines} == {"acme", "globex"}
    assert sum(Decimal(line["cost"]["total"]) for line in lines) == Decimal(event["cost"]["total"])
    assert sum(line["recommendations"] for line in lines) == out.counts["recommendations"]
    assert event["usage"]["device_seconds"] > 0 and event["usage"]["cpu_seconds"] > 0


def test_batch_cpu_is_the_batch_threads_not_the_process(scorer) -> None:
    """A busy thread of the same process (hashing without the GIL) runs beside the batch: the
    cost event counts the batch thread and the scoring thread, which take turns, so their CPU
    stays within the batch's wall time, while the process's CPU grows by the busy thread's too."""
    processor = _processor(scorer)
    records = runs_of(TrafficGenerator(seed=14).records(1500))
    stop = threading.Event()

    def busy() -> None:
        block = b"x" * 1_000_000
        while not stop.is_set():
            hashlib.sha256(block).digest()

    other = threading.Thread(target=busy)
    other.start()
    try:
        process_before = time.process_time()
        out = processor.process(records, _users(), "cpu")
        process = time.process_time() - process_before
    finally:
        stop.set()
        other.join()
    usage = out.cost_event["usage"]
    assert 0 < usage["device_seconds"] < usage["cpu_seconds"] <= usage["wall_seconds"] * 1.01 + 0.002
    assert process > usage["cpu_seconds"] + 0.1 * usage["wall_seconds"]


def test_throttle_limits_recommendations_per_user(scorer) -> None:
    processor = _processor(scorer, trigger_min_interval_s=60)
    now = time.time()
    events = [click(f"t{i}", "u-busy", f"i{i}", ts=now + i) for i in range(5)]
    out = processor.process(runs_of(events), _users(), "cpu")
    assert out.counts["valid"] == 5 and out.counts["recommendations"] == 1


def test_state_is_what_the_contract_says(scorer) -> None:
    event = parse_event("searches", search("q1", "u", "Red  LAMP", ["i1"]).value)
    assert event.query == "Red  LAMP"
    users = _users()
    _process(_processor(scorer), runs_of([search("q1", "u", "Red  LAMP", ["i1"])]), users)
    assert users.state(("acme", "u"))["terms"] == ["red", "lamp"]


def test_idle_user_starts_over(scorer) -> None:
    processor = _processor(scorer, user_ttl_s=3600)
    now = time.time()
    users = _users()
    _process(processor, runs_of([click("x1", "u-idle", "i1", ts=now - 7200)]), users)
    _process(processor, runs_of([click("x2", "u-idle", "i2", ts=now)]), users)
    assert users.state(("acme", "u-idle"))["items"] == ["i2"]


def test_ab_split_routes_users_stably(registry_dir, tmp_path) -> None:
    from reckon.streams.pipeline.routing import ModelRuntime, user_bucket

    from ..conftest import registry_with_copy

    path = tmp_path / "registry"
    _, v1 = registry_with_copy(registry_dir, path, "challenger")
    settings = Settings(worker_name="t", model_registry=path, ab_version="challenger",
                        ab_fraction=0.3, device="cpu")
    runtime = ModelRuntime(settings)
    processor = BatchProcessor(settings, PriceSheet.load(env={}), runtime.scorers_for, arm_of=runtime.arm_of)
    out = processor.process(runs_of(TrafficGenerator(seed=6).records(600)), _users(), "cpu")
    recs = [json.loads(v) for _, v in out.recommendations]
    assert all(r["arm"] == ("challenger" if r["model_version"] == "challenger" else "primary") for r in recs)
    by_user = {}
    for rec in recs:
        by_user.setdefault(rec["user_id"], set()).add(rec["model_version"])
    assert all(len(v) == 1 for v in by_user.values())                 # a user sees one version
    share = sum("challenger" in v for v in by_user.values()) / len(by_user)
    assert 0.15 < share < 0.45
    assert all(("challenger" in by_user[u]) == (user_bucket(u) < 0.3) for u in by_user)
    assert {line["model_version"] for line in out.cost_event["lines"]} == {v1, "challenger"}


def test_cost_lines_count_each_valid_event_under_its_tenant_arm_and_kind() -> None:
    # two arms, two tenants, clicks and searches, invalid events among them: each line's
    # events are the batch's valid events of that tenant, routed to that version, of that kind
    class Arm:
        def __init__(self, version: str) -> None:
            self.version = version

    arms = [Arm("a"), Arm("b")]
    route = lambda users: [arms[zlib.crc32(u.encode()) % 2] for u in users]   # noqa: E731
    processor = BatchProcessor(Settings(worker_name="t", trigger="none"), PriceSheet.load(env={}), route)
    records = list(TrafficGenerator(seed=6, search_fraction=0.3, bad_fraction=0.1).records(900))
    out = processor.process(runs_of(records), _users(), "cpu")
    expected: dict = {}
    for record in records:
        if record.valid:
            event = json.loads(record.value)
            key = (event.get("tenant") or "default", route([event["user_id"]])[0].version,
                   "click" if record.topic == "clicks" else "search")
            expected[key] = expected.get(key, 0) + 1
    lines = {(line["tenant"], line["model_version"], line["event_type"]): line["events"]
             for line in out.cost_event["lines"]}
    assert lines == expected and len(expected) == 8


def test_a_worker_that_never_scores_folds_state_but_learns_no_candidates(scorer) -> None:
    records = runs_of(TrafficGenerator(seed=8).records(300))
    ingest, full = _processor(scorer, trigger="none"), _processor(scorer)
    a_users, b_users = _users(), _users()
    a = _process(ingest, records, a_users)
    _process(full, records, b_users)
    users = sorted(a_users.row_of)
    assert users == sorted(b_users.row_of) and len(users) > 10
    assert all(a_users.state(u) == {**b_users.state(u), "last_rec_ts": 0.0} for u in users)   # same state
    assert a.recommendations == [] and a.cost_event is not None
    assert ingest.index("acme").trending_top(5) == [] and full.index("acme").trending_top(5) != []
    # the state bytes counted: what the batch's users take in the store (0 until written)
    assert a.cost_event["usage"]["state_bytes"] == 0
    sizes = {key: len(value) for values in a_users.snapshot().values() for key, value in values}
    again = _process(ingest, runs_of(list(TrafficGenerator(seed=8).records(600))[300:]), a_users)
    changed = {a_users.key(row) for row in again.changed.tolist()}
    assert again.cost_event["usage"]["state_bytes"] == sum(sizes.get(key, 0) for key in changed) > 0


def test_a_users_triggers_in_one_batch_share_one_recommendation(scorer) -> None:
    """Three events per user in one batch see the same state: one row, one recommendation, not three copies."""
    processor = _processor(scorer)
    users = _users()
    _run(processor, list(TrafficGenerator(seed=12).records(600)), users)
    now = time.time()
    events = [click(f"r{i}", user, f"i{i + 3}", ts=now + i) for i, user in enumerate(["u-a", "u-b"] * 3)]
    base = int(now * 1000) - 10_000
    stamps = iter(base + ms for ms in [1_000, 3_000, 2_000, 4_000, 5_000, 6_000])   # u-a's earliest is r0's
    runs = [(tp, [InRecord(r.key, r.value, next(stamps)) for r in run]) for tp, run in runs_of(events)]
    out = processor.process(runs, users, "cpu")
    recs = {r["user_id"]: r for r in (json.loads(v) for _, v in out.recommendations)}
    assert set(recs) == {"u-a", "u-b"}
    assert out.counts["scored_rows"] == 2 and out.counts["recommendations"] == 2
    assert (recs["u-a"]["trigger_event_id"], recs["u-a"]["triggers"]) == ("r4", 3)   # the latest of three
    assert (recs["u-b"]["trigger_event_id"], recs["u-b"]["triggers"]) == ("r5", 3)
    assert recs["u-a"]["trigger_ts"] == now + 4
    # latency from the earliest event answered: u-a waited since base + 1 s, u-b since base + 3 s
    assert recs["u-a"]["latency_ms"] - recs["u-b"]["latency_ms"] == pytest.approx(2000, abs=50)
    assert sum(line["recommendations"] for line in out.cost_event["lines"]) == 2
    assert sum(line["events"] for line in out.cost_event["lines"]) == 6


def test_latest_holds_each_users_published_recommendation_and_rank_scores_the_same(scorer) -> None:
    processor = _processor(scorer)
    users = _users()
    records = [click("e1", "u1", "i1"), click("e2", "u2", "i2"), click("e3", "u1", "i3")]
    out = _run(processor, records, users)[0]
    assert sorted(out.latest) == sorted([state_key("acme", "u1"), state_key("acme", "u2")])
    assert sorted(out.latest.values()) == sorted(value for _, value in out.recommendations)
    published = json.loads(out.latest[state_key("acme", "u1")])
    ranked = processor.scoring.rank("acme", users.state(("acme", "u1")), scorer)
    # int8 picks activation scales per call: alone, a row's scores shift a little (see above)
    assert ranked.items == published["items"]
    assert ranked.scores == pytest.approx(published["scores"], rel=0.01, abs=0.02)   # the error scales with the score


def test_a_record_without_a_value_is_dead_lettered_alone(scorer) -> None:
    """A tombstone (null value) on an event topic failed the whole batch before the parser
    saw it: the worker stopped, restarted and failed on it again."""
    processor = _processor(scorer)
    users = _users()
    good = click("e1", "u1", "i1")
    runs = [(("clicks", 0), [InRecord(good.key, good.value, 1_000, 0), InRecord(b"u2", None, 1_001, 1),
                             InRecord(None, None, 1_002, 2)])]
    out = processor.process(runs, users, "cpu")
    assert out.counts["valid"] == 1 and out.counts["invalid:no_value"] == 2
    assert [(d.key, d.value, d.offset, d.reason, d.stage) for d in out.dead_letters] == [
        (b"u2", None, 1, "no_value", "contract"), (None, None, 2, "no_value", "contract")]
    assert len(out.recommendations) == 1


def test_a_record_timestamp_no_producer_could_have_set_honestly_does_not_become_a_latency(scorer) -> None:
    """Producers set record timestamps: 1970, the next century or Kafka's "none" (-1) would
    set a latency percentile of the whole worker. Those latencies run from the event's own ts
    (bounded by the contract); a real wait, a record read an hour after it was produced, stays."""
    processor = _processor(scorer)
    users = _users()
    now = time.time()
    events = [click("h1", "u1", "i1", ts=now - 5), click("h2", "u2", "i2", ts=now - 5),
              click("h3", "u3", "i3", ts=now - 5), click("h4", "u4", "i4", ts=now - 7200)]
    stamps = iter([0, int((now + 86_400 * 365 * 80) * 1000), -1, int((now - 3600) * 1000)])
    runs = [(tp, [InRecord(r.key, r.value, next(stamps)) for r in run]) for tp, run in runs_of(events)]
    out = processor.process(runs, users, "cpu")
    latency = {r["user_id"]: r["latency_ms"] for r in (json.loads(v) for _, v in out.recommendations)}
    assert out.counts["record_ts_replaced"] == 3
    for user in ("u1", "u2", "u3"):
        assert 5_000 <= latency[user] < 5_000 + 30_000, latency
    assert 3_600_000 <= latency["u4"] < 3_600_000 + 30_000
    lines = out.cost_event["lines"]
    assert max(max(line["latencies_us"]) for line in lines if line["latencies_us"]) < 3_600_000_000 + 30_000_000
