"""Property: hostile messages on a sink's topic (cost events and recommendations with any
field replaced by hostile JSON: NaN, Infinity, huge numbers, lone surrogates, wrong types,
nesting; raw bytes), through the real sink on the embedded broker and chdb. Whatever
arrives, every message is either stored or dead-lettered, the sink never stalls on one,
and the untouched messages are all stored."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from reckon.streams.sink.consumer import SinkConsumer

from ..hostile import hostile_values
from .test_consumer import _committed, _produce_raw, _topic
from .test_rows import workload

pytestmark = pytest.mark.integration

_COST_PATHS = ("ts", "event_id", "kind", "worker", "usage.wall_seconds", "usage.cpu_seconds", "usage.bytes_in",
               "lines", "lines.0.tenant", "lines.0.events", "lines.0.share", "lines.0.latencies_ms",
               "lines.0.cost.total", "lines.0.cost.compute", "lines.1.model_version")
_REC_PATHS = ("user_id", "items", "model_version", "trigger_event_id", "ts", "trigger_ts", "latency_ms", "tenant")
_hostile = hostile_values | st.sampled_from([float("nan"), float("inf"), 1e300, 2**70, -1, "1e30", "NaN", "\ud800"])
_mutations = st.lists(st.tuples(st.booleans(), st.integers(0, 99), _hostile, st.booleans()), min_size=3, max_size=25)


def _set(doc: dict, path: str, value: object) -> None:
    *parents, leaf = path.split(".")
    for name in parents:
        doc = doc[int(name)] if isinstance(doc, list) else doc[name]
    doc[int(leaf) if isinstance(doc, list) else leaf] = value


def _message(tenant: str, is_cost: bool, pick: int) -> tuple[str, dict, tuple[str, ...]]:
    """A clean message: its stored id, its document, the paths a mutation may replace."""
    if is_cost:
        doc = workload(tenant, time.time() - pick)
        return f"{doc['event_id']}:0", doc, _COST_PATHS
    now = time.time()
    doc = {"user_id": "u1", "items": ["a"], "scores": [1.0], "model_version": "v1",
           "trigger_event_id": f"{tenant}-{uuid.uuid4().hex}", "latency_ms": 1.0, "ts": now, "trigger_ts": now,
           "tenant": tenant}
    return doc["trigger_event_id"], doc, _REC_PATHS


def _hostile(tenant: str, is_cost: bool, pick: int, value: object, raw: bool) -> bytes:
    """A message with one field replaced by a hostile value, or the value alone as raw bytes."""
    if raw:
        return repr(value).encode("utf-8", "surrogatepass")
    _, doc, paths = _message(tenant, is_cost, pick)
    _set(doc, paths[pick % len(paths)], value)
    return json.dumps(doc).encode("utf-8", "surrogatepass")


@settings(max_examples=8, deadline=None, derandomize=True, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutations=_mutations, clean=st.integers(2, 6))
def test_every_hostile_message_is_stored_or_dead_lettered_and_the_sink_goes_on(broker, clickhouse, mutations,
                                                                                clean) -> None:
    tenant = f"prop-{uuid.uuid4().hex[:8]}"
    costs, recs = _topic(broker), _topic(broker)
    values: dict[str, list[bytes]] = {costs: [], recs: []}
    for is_cost, pick, value, raw in mutations:
        values[costs if is_cost else recs].append(_hostile(tenant, is_cost, pick, value, raw))
    good: dict[str, set[str]] = {costs: set(), recs: set()}
    for topic, is_cost in ((costs, True), (recs, False)):
        for i in range(clean):
            stored_id, doc, _ = _message(tenant, is_cost, i)
            good[topic].add(stored_id)
            values[topic].append(json.dumps(doc).encode())
    stats: Counter = Counter()

    async def run() -> None:
        for topic in (costs, recs):
            await _produce_raw(broker.bootstrap_servers, topic, values[topic])
        sink = SinkConsumer(clickhouse, broker.bootstrap_servers, {costs: "cost_events", recs: "recommendations_log"},
                            group_id=f"g-{tenant}", batch_rows=500, flush_ms=100, stats=stats, max_backoff_s=0.3,
                            session_timeout_ms=3_000)
        await sink.start()
        try:
            async def done() -> bool:     # every message's offset committed: stored or dead-lettered
                committed = [(await _committed(sink, t))[0] for t in (costs, recs)]
                return committed == [len(values[costs]), len(values[recs])]

            deadline = time.monotonic() + 60
            while not await done():
                assert time.monotonic() < deadline, f"the sink stopped short: {dict(stats)}"
                await asyncio.sleep(0.1)
        finally:
            await sink.stop()
        assert sink.failed is None

    asyncio.run(run())
    assert stats["sink_retries"] == stats["sink_errors"] == 0                 # never stalled on a message
    dead = sum(v for k, v in stats.items() if k.startswith("sink_dead:"))
    assert stats["cost_events_sunk"] + stats["cost_events_dead_lettered"] == len(values[costs])
    assert dead >= stats["cost_events_dead_lettered"]
    stored_costs = {r[0] for r in clickhouse.query(
        "SELECT event_id FROM cost_events WHERE event_id IN {ids:Array(String)}", {"ids": sorted(good[costs])})}
    stored_recs = {r[0] for r in clickhouse.query(
        "SELECT trigger_event_id FROM recommendations_log WHERE tenant = {t:String}", {"t": tenant})}
    assert stored_costs == good[costs] and good[recs] <= stored_recs
