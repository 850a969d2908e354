"""Faults: fuzzed input never crashes the path; a broker that lost its data stops the worker."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reckon.streams.core.settings import Settings
from reckon.streams.costs.pricing import PriceSheet
from reckon.streams.kafka.broker import EmbeddedBroker, create_topics
from reckon.streams.pipeline.contracts import REASONS, Event, Invalid, parse_event
from reckon.streams.pipeline.processor import BatchProcessor, runs_of
from reckon.streams.pipeline.user_rows import UserRows
from reckon.streams.traffic.generator import TrafficGenerator
from reckon.streams.traffic.replay import produce

from ..conftest import wait_for

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=6),
    max_leaves=20)
_fields = st.fixed_dictionaries({}, optional={
    "event_id": _json_values | st.text(min_size=1, max_size=10),
    "user_id": _json_values | st.text(min_size=1, max_size=10),
    "item_id": _json_values | st.text(min_size=1, max_size=10),
    "action": st.sampled_from(["view", "cart", "purchase", "x"]) | _json_values,
    "ts": st.floats(allow_nan=True) | st.just(time.time()) | _json_values,
    "query": st.text(max_size=40) | _json_values,
    "results": st.lists(st.text(max_size=5), max_size=5) | _json_values,
    "tenant": st.text(max_size=5) | _json_values,
    "price": st.floats() | _json_values,
})
_payloads = st.binary(max_size=300) | _fields.map(lambda d: json.dumps(d, default=str).encode())


@settings(max_examples=2000, deadline=None)
@given(topic=st.sampled_from(["clicks", "searches"]), raw=_payloads)
def test_parse_event_never_raises(topic: str, raw: bytes) -> None:
    result = parse_event(topic, raw)
    assert isinstance(result, (Event, Invalid))
    if isinstance(result, Invalid):
        assert result.reason in REASONS


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(st.tuples(st.sampled_from(["clicks", "searches"]), _payloads), min_size=1, max_size=250))
def test_fuzzed_batches_are_fully_accounted_for(scorer, batch) -> None:
    # 40 batches of up to 250: ~5,000 fuzzed events through the whole processor per run
    processor = BatchProcessor(Settings(worker_name="fuzz"), PriceSheet.load(env={}), lambda users: [scorer] * len(users))
    records = [SimpleNamespace(topic=topic, key=b"k", value=raw) for topic, raw in batch]
    users = UserRows(lambda key, partition: None)
    out = processor.process(runs_of(records), users, "cpu")
    invalid = sum(v for k, v in out.counts.items() if k.startswith("invalid:"))
    assert out.counts["valid"] + out.counts["duplicate"] + invalid == len(records)
    # the states they made are stored and read back as they are (the commit's encoding)
    users.stage(out.changed, out.changed_partitions)
    stored = {key: value for values in users.snapshot().values() for key, value in values}
    again = UserRows(lambda key, partition: stored.get(key))
    assert len(stored) == len(out.changed)
    assert all(again.state(user) == users.state(user) for user in list(users.row_of))
    recs = [json.loads(value) for _, value in out.recommendations]
    assert len(recs) == out.counts["recommendations"] == len({r["user_id"] for r in recs})   # one per user
    assert sum(r["triggers"] for r in recs) == out.counts["valid"]                          # every event answered
    assert len(out.dead_letters) == invalid


def test_worker_stops_clearly_when_the_broker_loses_its_data(workers, tmp_path) -> None:
    worker = workers.start("lonely")
    asyncio.run(produce(workers.broker.bootstrap_servers, TrafficGenerator(seed=1).records(200)))
    wait_for(lambda: (worker.stats() or {}).get("consumed", 0) >= 200, what="events consumed")
    time.sleep(6)                                      # the watchdog has seen the offsets
    workers.broker.stop()                              # memory only: everything is gone
    restarted = EmbeddedBroker(port=workers.broker.port, log_path=tmp_path / "b2.log").start()
    try:
        create_topics(restarted.bootstrap_servers, 4)  # same names, empty logs
        wait_for(lambda: worker.proc.poll() is not None, timeout_s=90, what="the worker to stop")
        assert worker.proc.returncode != 0
        assert "lost its data" in worker.log_path.read_text(errors="replace")
    finally:
        restarted.stop()


def test_watchdog_flags_offsets_going_backwards() -> None:
    from reckon.streams.core.errors import BrokerError
    from reckon.streams.kafka.watchdog import BrokerWatchdog

    dog = BrokerWatchdog("b:9092", ["clicks"])
    dog.observe({("clicks", 0): 10, ("clicks", 1): 5})
    dog.observe({("clicks", 0): 12, ("clicks", 1): 5})
    try:
        dog.observe({("clicks", 0): 0, ("clicks", 1): 5})
    except BrokerError as exc:
        assert "clicks[0] 12 -> 0" in str(exc)
    else:
        raise AssertionError("a shrinking log was not flagged")
