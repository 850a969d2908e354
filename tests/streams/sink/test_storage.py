"""What the sink wrote to ClickHouse, from the server's part sizes, as cost rows."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from reckon.streams.costs.pricing import PriceSheet
from reckon.streams.kafka.broker import create_topics
from reckon.streams.sink.consumer import SinkConsumer
from reckon.streams.sink.rows import COLUMNS
from reckon.streams.sink.storage import MEASURED, Part, StorageMeter, bytes_written, flush_id, parts, storage_rows

from .test_consumer import FlakyClickHouse, _produce, _until
from .test_rows import workload

SHEET = PriceSheet.load(env={})
T = datetime(2026, 6, 1, tzinfo=timezone.utc)


def test_bytes_written_counts_parts_of_new_blocks_only() -> None:
    """Inserts take block numbers above every earlier one: parts of new blocks are written data,
    a merge of older parts is not, and a merge that took in a new part counts the new rows' share."""
    before = {("cost_events", "a_1_1_0"): Part("a", 1, 1, 10, 100), ("cost_events", "a_2_2_0"): Part("a", 2, 2, 6, 60),
              ("cost_minute", "m_1_3_1"): Part("m", 1, 3, 30, 300), ("clicks_log", "c_1_4_1"): Part("c", 1, 4, 50, 500),
              ("clicks_log", "c_5_5_0"): Part("c", 5, 5, 2, 20)}
    after = {("cost_events", "a_1_2_1"): Part("a", 1, 2, 16, 150),      # old parts merged: nothing new
             ("cost_events", "a_3_3_0"): Part("a", 3, 3, 4, 40),        # inserted
             ("cost_minute", "m_1_4_2"): Part("m", 1, 4, 40, 280),      # took in 10 new rows: 70 of 280 bytes
             ("recommendations_log", "r_1_1_0"): Part("r", 1, 1, 7, 70),   # a table's first part
             ("clicks_log", "c_1_4_1"): Part("c", 1, 4, 50, 500)}       # c_5_5_0 dropped by a TTL merge
    assert bytes_written(before, after) == {"cost_events": 40 + 70, "recommendations_log": 70, "clicks_log": 0}
    assert set(MEASURED) == {"cost_events", "cost_minute", "cost_hour", "recommendations_log", "clicks_log"}


def test_storage_rows_split_bytes_by_rows_and_price_them() -> None:
    rec = ["r", T, T, "acme", "u", "v1", "e", [], 1.0]                 # recommendations_log's columns
    other = ["r", T, T, "beta", "u", "v2", "e", [], 1.0]
    click = ["c", T, "acme", "u", "i", "view", "", None]               # clicks_log: no model version
    lines = [dict(zip(COLUMNS, r)) for r in storage_rows(
        {"recommendations_log": [rec, rec, other], "clicks_log": [click]},
        {"recommendations_log": 1_000_000_001, "clicks_log": 300}, SHEET, "w", "f1", ts=T)]
    by = {(r["event_type"], r["tenant"], r["model_version"]): r for r in lines}
    recs_acme = by[("clickhouse:recommendations_log", "acme", "v1")]
    recs_beta = by[("clickhouse:recommendations_log", "beta", "v2")]
    assert (recs_acme["rows_written"], recs_beta["rows_written"]) == (2, 1)
    assert recs_acme["clickhouse_bytes"] + recs_beta["clickhouse_bytes"] == 1_000_000_001   # exact split
    assert recs_acme["kind"] == "workload" and recs_acme["events"] == recs_acme["recommendations"] == 0
    clicks = by[("clickhouse:clicks_log", "", "")]                     # no version: shared, allocated later
    assert (clicks["kind"], clicks["rows_written"], clicks["clickhouse_bytes"]) == ("shared", 1, 300)
    # 666,666,667 bytes x $0.05 per GB (price sheet clickhouse_gb_month)
    assert recs_acme["cost_storage_usd"] == recs_acme["cost_usd"] == Decimal("0.03333333335")
    assert len({r["event_id"] for r in lines}) == 3
    assert flush_id({("a", 0): 5, ("b", 1): 7}) == flush_id({("b", 1): 7, ("a", 0): 5})


@pytest.mark.integration
def test_a_flush_charges_what_it_wrote_once_even_when_an_ack_is_lost(broker, clickhouse) -> None:
    """Cost events, recommendations and clicks through a real sink whose first insert lands but
    loses its answer: the retry stores nothing twice, and one set of storage rows says how many
    rows went to each table and how many bytes the server's parts grew by."""
    tag = uuid.uuid4().hex[:8]
    tenant, worker = f"store-{tag}", f"sink-{tag}"
    topics = {f"costs-{tag}": "cost_events", f"recs-{tag}": "recommendations_log", f"clicks-{tag}": "clicks_log"}
    create_topics(broker.bootstrap_servers, 4, topics=list(topics))
    now = datetime.now(timezone.utc).timestamp()
    events = [workload(tenant, now - i) for i in range(20)]            # two lines each: v1 and v2
    recs = [{"user_id": f"u{i}", "items": ["a", "b"], "scores": [1, 0], "model_version": "v1",
             "trigger_event_id": f"{tag}-e{i}", "triggers": 1, "latency_ms": 3.0, "ts": now, "tenant": tenant}
            for i in range(300)]
    clicks = [{"event_id": f"{tag}-c{i}", "user_id": f"u{i}", "item_id": "a", "action": "view", "ts": now,
               "tenant": tenant} for i in range(200)]
    flaky = FlakyClickHouse(clickhouse, lost_acks=1)
    stats: Counter = Counter()
    clickhouse.command("SYSTEM STOP MERGES")    # merges paused: the tables' total size is an outside measure
    before = sum(p.size for p in parts(clickhouse).values())

    async def run() -> None:
        names = list(topics)
        await _produce(broker.bootstrap_servers, names[0], events)
        await _produce(broker.bootstrap_servers, names[1], [{**r, "event_id": r["trigger_event_id"]} for r in recs])
        await _produce(broker.bootstrap_servers, names[2], clicks)
        sink = SinkConsumer(flaky, broker.bootstrap_servers, topics, group_id=f"g-{tag}", batch_rows=5000,
                            flush_ms=1500, stats=stats, max_backoff_s=0.3, session_timeout_ms=3_000,
                            storage=StorageMeter(flaky, SHEET, worker))
        await sink.start()
        try:
            await _until(lambda: stats["clicks_logged"] + stats["recs_logged"] >= 500
                         and stats["cost_rows_written"] >= 40)
        finally:
            await sink.stop()

    try:
        asyncio.run(run())
        grown = sum(p.size for p in parts(clickhouse).values()) - before
    finally:
        clickhouse.command("SYSTEM START MERGES")
    lines = clickhouse.query_dicts(
        "SELECT event_type, kind, tenant, model_version, clickhouse_bytes, rows_written, cost_usd FROM cost_events "
        "WHERE worker = {w:String}", {"w": worker})
    assert stats["sink_retries"] >= 1                                   # the lost answer was retried
    rows = Counter()
    for line in lines:
        rows[(line["event_type"], line["tenant"], line["model_version"])] += line["rows_written"]
    assert rows == {("clickhouse:cost_events", tenant, "v1"): 20, ("clickhouse:cost_events", tenant, "v2"): 20,
                    ("clickhouse:recommendations_log", tenant, "v1"): 300, ("clickhouse:clicks_log", "", ""): 200}
    measured = sum(line["clickhouse_bytes"] for line in lines)
    assert all(line["clickhouse_bytes"] > 0 and line["cost_usd"] > 0 for line in lines)
    # The tables grew by what the lines say plus the lines' own parts (charged to a next flush).
    assert measured < grown <= measured + 20_000
