"""Kafka -> ClickHouse rows: row shapes, idempotent writes, exact SQL."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from reckon.streams.costs.idle import IntervalAccountant, Reserved
from reckon.streams.costs.meter import cost_event, group_key, new_groups
from reckon.streams.costs.pricing import PriceSheet, Usage
from reckon.streams.sink.rows import (
    COLUMNS,
    REC_COLUMNS,
    BadMessage,
    Rows,
    Source,
    click_row,
    recommendation_row,
    rows_from_event,
    rows_from_message,
    stored_ids_query,
    write,
    write_events,
)

SHEET = PriceSheet.load(env={})


def workload(tenant: str, ts: float, recs: tuple[int, int] = (3, 1), batch_id: str | None = None) -> dict:
    groups = new_groups()
    groups[group_key(tenant, "v1", "click")].events = recs[0]
    groups[group_key(tenant, "v1", "click")].recommendations = recs[0]
    groups[group_key(tenant, "v2", "search")].events = recs[1]
    groups[group_key(tenant, "v2", "search")].recommendations = recs[1]
    groups[group_key(tenant, "v1", "click")].latencies_us = [1500, 2500, 3500]
    usage = Usage(wall_seconds=0.02, device_seconds=0.01, cpu_seconds=0.03, bytes_in=4000, bytes_out=3000,
                  state_bytes=9000)
    return cost_event(batch_id or f"b-{uuid.uuid4().hex}", usage, groups, SHEET, "w-sink", 2.0, ts=ts)


def test_rows_carry_each_lines_share_of_quantities_and_cost() -> None:
    event = workload("t", 1_795_000_000.0)
    rows = [dict(zip(COLUMNS, r)) for r in rows_from_event(event)]
    assert [r["event_id"] for r in rows] == [f"{event['event_id']}:0", f"{event['event_id']}:1"]
    assert sum(r["cost_usd"] for r in rows) == Decimal(event["cost"]["total"])
    assert rows[0]["ts"] == datetime.fromtimestamp(1_795_000_000.0, timezone.utc)
    assert rows[0]["wall_seconds"] == pytest.approx(0.02 * 0.75)              # x share (3 of 4 recs)
    assert rows[0]["ram_gb_seconds"] == pytest.approx(2.0 * 0.02 * 0.75)
    assert rows[0]["latencies_ms"] == [1.5, 2.5, 3.5]
    # a batch writes nothing to ClickHouse itself and staffs nobody: the sink's storage rows
    # carry bytes and rows written (streams/sink/storage.py), shared rows the staffed time
    assert {(r["clickhouse_bytes"], r["rows_written"], r["staffed_seconds"]) for r in rows} == {(0, 0, 0.0)}


def test_interval_rows_keep_ram_gb_seconds_and_staffed_seconds() -> None:
    acc = IntervalAccountant(SHEET, Reserved(1, 3), "w", "cpu", interval_s=10, started_at=1_795_000_000.0)
    idle, shared = acc.close_due(now=1_795_000_010.0)
    (row,) = [dict(zip(COLUMNS, r)) for r in rows_from_event(idle)]
    assert (row["kind"], row["tenant"], row["ram_gb_seconds"], row["cpu_seconds"]) == ("idle", "", 30.0, 10.0)
    (row,) = [dict(zip(COLUMNS, r)) for r in rows_from_event(shared)]
    assert (row["kind"], row["staffed_seconds"]) == ("shared", 10.0)


def test_recommendation_and_click_rows() -> None:
    rec = {"user_id": "u1", "items": ["a", "b"], "scores": [1, 0], "model_version": "v1",
           "trigger_event_id": "e1", "latency_ms": 4.2, "ts": 1_795_000_000.5, "tenant": "acme"}
    row = recommendation_row(rec)
    assert row[0].startswith("e1:v1:1795000000500:") and row[1] == row[2]   # no trigger_ts: publication time
    # the user is part of the id: another user's answer to an event of the same id, same ms, is another row
    assert recommendation_row({**rec, "user_id": "u2"})[0] != row[0]
    assert recommendation_row({**rec, "tenant": "globex"})[0] != row[0]
    assert row[6] == "" and recommendation_row({**rec, "arm": "challenger"})[6] == "challenger"   # arm if told
    with pytest.raises(BadMessage, match="arm"):
        recommendation_row({**rec, "arm": 1})
    row = recommendation_row({**rec, "trigger_ts": 1_794_999_990.0})
    assert row[1] == datetime.fromtimestamp(1_794_999_990.0, timezone.utc)
    with pytest.raises(BadMessage):
        rows_from_message("recommendations_log", json.dumps({**rec, "items": "a"}).encode())
    with pytest.raises(BadMessage):
        rows_from_message("cost_events", b"{not json")
    with pytest.raises(BadMessage):
        rows_from_message("cost_events", b"[1, 2]")
    now = datetime.now(timezone.utc).timestamp()
    click = {"event_id": "c1", "user_id": "u1", "item_id": "a", "action": "purchase", "ts": now, "price": 19.99}
    row = click_row(json.dumps(click).encode(), "default")
    assert row is not None and row[2] == "default" and row[7] == Decimal("19.990000")
    assert click_row(json.dumps({**click, "action": "steal"}).encode(), "default") is None
    # RECKON_TENANTS: the worker dead-letters another tenant's click, so the log stores none
    assert click_row(json.dumps({**click, "tenant": "evil"}).encode(), "default", frozenset({"acme"})) is None
    assert click_row(json.dumps({**click, "tenant": "acme"}).encode(), "default", frozenset({"acme"})) is not None


def test_stored_ids_query_is_constant_sql_with_bound_values() -> None:
    lo = datetime(2026, 11, 1, tzinfo=timezone.utc)
    sql, params = stored_ids_query("clicks_log", ["a", "b"], lo, lo)
    assert sql == ("SELECT tenant, user_id, event_id FROM clicks_log WHERE ts >= {lo:DateTime64(3, 'UTC')} "
                   "AND ts <= {hi:DateTime64(3, 'UTC')} AND event_id IN {ids:Array(String)}")
    assert params == {"lo": lo, "hi": lo, "ids": ["a", "b"]}
    with pytest.raises(ValueError):
        stored_ids_query("users; DROP TABLE x", [], lo, lo)


@pytest.mark.integration
def test_write_is_idempotent_and_rollups_follow(clickhouse) -> None:
    tenant = f"sink-{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc).timestamp()
    events = [workload(tenant, now - i) for i in range(5)]
    assert write_events(clickhouse, events[:2]) == 4
    assert write_events(clickhouse, events) == 6               # only the three new events' rows
    assert write_events(clickhouse, events + events) == 0      # a full redelivery: nothing
    raw = clickhouse.query("SELECT count(), sum(cost_usd) FROM cost_events WHERE tenant = {t:String}", {"t": tenant})
    minute = clickhouse.query("SELECT sum(rows), sum(cost_usd) FROM cost_minute WHERE tenant = {t:String}", {"t": tenant})
    hour = clickhouse.query("SELECT sum(rows), sum(cost_usd) FROM cost_hour WHERE tenant = {t:String}", {"t": tenant})
    expected = sum((Decimal(e["cost"]["total"]) for e in events), Decimal(0))
    assert raw[0] == (10, expected) and minute[0] == (10, expected) and hour[0] == (10, expected)


@pytest.mark.integration
def test_logs_are_written_once(clickhouse) -> None:
    tenant = f"logs-{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc).timestamp()
    rec = {"user_id": "u1", "items": ["a"], "model_version": "v1", "trigger_event_id": "e1", "latency_ms": 1.0,
           "ts": now, "tenant": tenant}
    clicks = [json.dumps({"event_id": f"{tenant}-c{i}", "user_id": "u1", "item_id": "a", "action": "view",
                          "ts": now + i, "tenant": tenant}).encode() for i in range(3)]
    rows = Rows()
    rows.add("recommendations_log", rows_from_message("recommendations_log", json.dumps(rec).encode()))
    for raw in clicks + clicks[:1]:                  # a client retry inside one flush
        rows.add("clicks_log", rows_from_message("clicks_log", raw))
    assert write(clickhouse, rows).inserted == {"recommendations_log": 1, "clicks_log": 3}
    assert write(clickhouse, rows).inserted == {"recommendations_log": 0, "clicks_log": 0}


@pytest.mark.integration
def test_two_users_events_that_share_an_id_are_both_stored(clickhouse) -> None:
    # The worker deduplicates per user: two users' (or tenants') events with one id are two
    # events, and the logs keep both (the sink kept whichever came first).
    tenant = f"shared-{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc).timestamp()
    rows = Rows()
    for user, owner in (("u1", tenant), ("u2", tenant), ("u1", tenant + "-b")):
        click = {"event_id": "same", "user_id": user, "item_id": "a", "action": "view", "ts": now, "tenant": owner}
        rows.add("clicks_log", rows_from_message("clicks_log", json.dumps(click).encode()))
        rec = {"user_id": user, "items": ["a"], "model_version": "v1", "trigger_event_id": "same",
               "latency_ms": 1.0, "ts": now, "trigger_ts": now, "tenant": owner}
        rows.add("recommendations_log", rows_from_message("recommendations_log", json.dumps(rec).encode()))
    assert write(clickhouse, rows).inserted == {"recommendations_log": 3, "clicks_log": 3}
    assert write(clickhouse, rows).inserted == {"recommendations_log": 0, "clicks_log": 0}   # a re-read: none
    for table in ("clicks_log", "recommendations_log"):
        stored = clickhouse.query(f"SELECT tenant, user_id FROM {table} FINAL WHERE startsWith(tenant, {{t:String}})",
                                  {"t": tenant})
        assert sorted(stored) == sorted([(tenant, "u1"), (tenant, "u2"), (tenant + "-b", "u1")])


@pytest.mark.integration
def test_a_recommendation_stored_under_the_old_id_is_not_stored_again(clickhouse) -> None:
    # Stored before rec_id named its user (trigger:version:ms): a re-read after the upgrade is the same row.
    tenant = f"legacy-{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc).timestamp()
    rec = {"user_id": "u1", "items": ["a"], "model_version": "v1", "trigger_event_id": "e1", "latency_ms": 1.0,
           "ts": now, "tenant": tenant}
    (row,) = rows_from_message("recommendations_log", json.dumps(rec).encode())
    old = [row[0].rsplit(":", 1)[0], *row[1:]]
    clickhouse.insert("recommendations_log", [old], REC_COLUMNS)
    rows = Rows()
    rows.add("recommendations_log", [row])
    assert write(clickhouse, rows).inserted == {"recommendations_log": 0}


def _cost_message(**changes: object) -> bytes:
    event = workload("hostile", 1_795_000_000.0)
    for path, value in changes.items():
        target = event
        *parents, leaf = path.split("__")
        for name in parents:
            target = target[int(name)] if isinstance(target, list) else target[name]
        target[int(leaf) if isinstance(target, list) else leaf] = value
    return json.dumps(event).encode()


@pytest.mark.parametrize("value", [
    _cost_message(usage__wall_seconds=float("nan")),
    _cost_message(usage__cpu_seconds=float("inf")),
    _cost_message(lines__0__cost__total="NaN"),
    _cost_message(lines__0__tenant="t\ud800"),
    _cost_message(lines__0__latencies_ms=[1.0, float("-inf")]),
    _cost_message(ts=1e300),
    _cost_message(lines="not a list"),
    _cost_message(event_id={"nested": [[["junk"]]]}),
    b'{"event_id": "x", "usage": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    b"\xff\xfe",
])
def test_a_cost_message_the_tables_cannot_hold_is_a_bad_message(value: bytes) -> None:
    with pytest.raises(BadMessage):
        rows_from_message("cost_events", value)


def test_hostile_recommendations_and_clicks_are_bad_messages_or_skipped() -> None:
    rec = {"user_id": "u1", "items": ["a"], "model_version": "v1", "trigger_event_id": "e1", "latency_ms": 1.0,
           "ts": 1_795_000_000.0, "tenant": "acme"}
    for hostile in ({"user_id": "\udc00"}, {"items": ["a", "\ud800"]}, {"latency_ms": float("nan")},
                    {"ts": float("inf")}, {"trigger_ts": -1e300}):
        with pytest.raises(BadMessage):
            rows_from_message("recommendations_log", json.dumps({**rec, **hostile}).encode())
    now = datetime.now(timezone.utc).timestamp()
    click = {"event_id": "c1", "user_id": "u1", "item_id": "a", "action": "view", "ts": now}
    for price in (float("nan"), float("inf"), 1e300):   # the contract refuses them: no row
        assert rows_from_message("clicks_log", json.dumps({**click, "price": price}).encode()) == []


@pytest.mark.integration
def test_rows_clickhouse_refuses_are_set_aside_alone(clickhouse) -> None:
    tenant = f"refused-{uuid.uuid4().hex[:8]}"
    events = [workload(tenant, datetime.now(timezone.utc).timestamp() - i) for i in range(6)]
    events[2]["lines"][1]["cost"]["total"] = "1e30"        # finite, but no Decimal64(12) holds it
    events[4]["lines"][0]["cost"]["ops"] = "-1e25"
    rows, sources = Rows(), []
    for offset, event in enumerate(events):
        sources.append(Source("cost-events", 0, offset, None, json.dumps(event).encode()))
        rows.add("cost_events", rows_from_message("cost_events", sources[-1].value), sources[-1])
    written = write(clickhouse, rows)
    assert [(source.offset, "cost_usd" in why or "cost_ops_usd" in why) for source, why in written.rejected] \
        == [(2, True), (4, True)]
    stored = {r[0] for r in clickhouse.query("SELECT event_id FROM cost_events WHERE tenant = {t:String}",
                                             {"t": tenant})}
    refused = {events[2]["event_id"], events[4]["event_id"]}     # a message's rows: all or none
    assert stored == {row[0] for row in rows.tables["cost_events"] if row[1] not in refused}
    assert write(clickhouse, rows).inserted == {"cost_events": 0}   # a retry stores nothing twice
