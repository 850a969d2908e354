"""Re-pricing history under any mirrored price sheet: exact SQL, hand-computed figures."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from reckon.streams.core.errors import PriceSheetError
from reckon.streams.costs.idle import IntervalAccountant, Reserved
from reckon.streams.costs.meter import cost_event, group_key, new_groups
from reckon.streams.costs.pricing import PriceSheet, Usage
from reckon.streams.costs.repricing import REPRICE_GROUPS, reprice, reprice_query, sync_prices
from reckon.streams.sink.rows import write_events

EXPECTED_SQL = """SELECT
    tenant, kind,
    sum(row_stored_usd) AS stored_usd,
    sum(row_compute_usd) AS compute_usd,
    sum(row_storage_usd) AS storage_usd,
    sum(row_people_usd) AS people_usd,
    sum(row_ops_usd) AS ops_usd,
    sum(row_compute_usd + row_storage_usd + row_people_usd + row_ops_usd) AS repriced_usd,
    count() AS cost_rows
FROM (
    SELECT
        e.tenant AS tenant, e.kind AS kind,
        e.cost_usd AS row_stored_usd,
        greatest(1, arrayCount(x -> x <= e.ts, s.starts)) AS b,
        s.gpu_keys[b] AS keys,
        arrayFirstIndex(k -> k != 'default' AND position(lower(e.device), k) > 0, keys) AS matched,
        if(NOT startsWith(e.device, 'cuda'), toDecimal64(0, 12),
           if(matched > 0, s.gpu_usd[b][matched],
              if(indexOf(keys, 'default') > 0, s.gpu_usd[b][indexOf(keys, 'default')], toDecimal64(0, 12))))
            AS gpu_hour,
        toDecimal128(round((toDecimal128(e.cpu_seconds, 12) * s.vcpu_hour[b]
                            + toDecimal128(e.device_seconds, 12) * gpu_hour
                            + toDecimal128(e.ram_gb_seconds, 12) * s.gb_ram_hour[b]) / 3600, 12), 12)
            AS row_compute_usd,
        toDecimal128(round(toDecimal128(e.state_bytes, 0) * s.state_gb_month[b] * toDecimal128(e.wall_seconds, 12)
                           / 2628000000000000
                           + (toDecimal128(e.bytes_in, 0) * s.kafka_gb_in[b]
                              + toDecimal128(e.bytes_out, 0) * s.kafka_gb_out[b]
                              + toDecimal128(e.clickhouse_bytes, 0) * s.clickhouse_gb_month[b]) / 1000000000, 12), 12)
            AS row_storage_usd,
        toDecimal128(round(toDecimal128(e.staffed_seconds, 12) * s.people_hour[b] / 3600, 12), 12) AS row_people_usd,
        toDecimal128(round(toDecimal128(e.staffed_seconds, 12) * s.ops_hour[b] / 3600, 12), 12) AS row_ops_usd
    FROM cost_events AS e FINAL
    CROSS JOIN (
    SELECT
        groupArray(effective_from) AS starts,
        groupArray(vcpu_hour) AS vcpu_hour, groupArray(gb_ram_hour) AS gb_ram_hour,
        groupArray(state_gb_month) AS state_gb_month, groupArray(kafka_gb_in) AS kafka_gb_in,
        groupArray(kafka_gb_out) AS kafka_gb_out, groupArray(clickhouse_gb_month) AS clickhouse_gb_month,
        groupArray(people_hour) AS people_hour, groupArray(ops_hour) AS ops_hour,
        groupArray(gpu_keys) AS gpu_keys, groupArray(gpu_usd) AS gpu_usd
    FROM
    (
        SELECT
            effective_from,
            anyIf(usd, name = 'vcpu_hour') AS vcpu_hour, anyIf(usd, name = 'gb_ram_hour') AS gb_ram_hour,
            anyIf(usd, name = 'state_gb_month') AS state_gb_month, anyIf(usd, name = 'kafka_gb_in') AS kafka_gb_in,
            anyIf(usd, name = 'kafka_gb_out') AS kafka_gb_out,
            anyIf(usd, name = 'clickhouse_gb_month') AS clickhouse_gb_month,
            anyIf(usd, name = 'people_hour') AS people_hour, anyIf(usd, name = 'ops_hour') AS ops_hour,
            arraySort(t -> (-length(t.1), t.1), groupArrayIf((device, usd), name = 'gpu_hour')) AS gpu,
            arrayMap(t -> t.1, gpu) AS gpu_keys, arrayMap(t -> t.2, gpu) AS gpu_usd
        FROM prices FINAL
        WHERE sheet_version = {sheet_version:String}
        GROUP BY effective_from
        ORDER BY effective_from
    )) AS s
    WHERE e.ts >= {start:DateTime64(3, 'UTC')} AND e.ts < {end:DateTime64(3, 'UTC')} AND e.tenant = {tenant:String})
GROUP BY tenant, kind
ORDER BY tenant, kind"""

BLOCK = {"vcpu_hour": 0.036, "gb_ram_hour": 0.0072, "state_gb_month": 0, "kafka_gb_in": 0, "kafka_gb_out": 0,
         "clickhouse_gb_month": 0, "people_hour": 1.8, "ops_hour": 0.36, "gpu_hour": {"default": 3.6}}


def test_reprice_query_is_exact_and_binds_every_value() -> None:
    start, end = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 2, 1, tzinfo=timezone.utc)
    sql, params = reprice_query("v", start, end, ("tenant", "kind"), tenant="acme")
    assert sql == EXPECTED_SQL
    assert params == {"sheet_version": "v", "start": start, "end": end, "tenant": "acme"}
    assert "acme" not in sql and "2026" not in sql


def test_reprice_query_groups_come_from_an_allow_list() -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    sql, params = reprice_query("v", start, start, ("model_version", "model_version"))
    assert "tenant" not in params and "e.tenant" not in sql
    assert sql.endswith("GROUP BY model_version\nORDER BY model_version")
    for bad in ((), ("tenant; DROP TABLE prices",), ("cost_usd",)):
        with pytest.raises(ValueError, match="group_by"):
            reprice_query("v", start, start, bad)
    assert set(REPRICE_GROUPS) == {"tenant", "model_version", "kind", "event_type", "worker", "device"}


def _sheet(version: str, *starts_and_vcpu: tuple[datetime, float]) -> PriceSheet:
    blocks = [{**BLOCK, "effective_from": at.isoformat(), "vcpu_hour": vcpu} for at, vcpu in starts_and_vcpu]
    return PriceSheet.from_dict({"version": version, "prices": blocks}, "test", env={})


def _batch(tenant: str, ts: float, sheet: PriceSheet, worker: str = "w-reprice") -> dict:
    groups = new_groups()
    groups[group_key(tenant, "v1", "click")].events = 10
    groups[group_key(tenant, "v1", "click")].recommendations = 10
    usage = Usage(wall_seconds=3.6, device_seconds=0.0, cpu_seconds=7.2)
    return cost_event(f"b-{uuid.uuid4().hex}", usage, groups, sheet, worker, 2.0, ts=ts)


@pytest.mark.integration
def test_a_price_changed_from_a_past_time_gives_the_hand_computed_figure(clickhouse) -> None:
    tenant, tag = f"reprice-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    worker = f"w-reprice-{tag}"
    now = datetime.now(timezone.utc).replace(microsecond=0)
    old = _sheet(f"old-{tag}", (now - timedelta(days=90), 0.036))
    sync_prices(clickhouse, old)
    early, late = now - timedelta(days=40), now - timedelta(days=5)
    # A worker's 10 s interval, with no batch in it: idle compute and shared people and ops.
    accountant = IntervalAccountant(old, Reserved(vcpus=1, ram_gb=2), worker, "cpu", interval_s=10,
                                    started_at=late.timestamp() - 100)
    interval = accountant.close_all(now=late.timestamp() - 90)
    write_events(clickhouse, [_batch(tenant, early.timestamp(), old, worker),
                              _batch(tenant, late.timestamp(), old, worker), *interval])

    # By hand. A batch: compute (7.2 CPU-s x vCPU-hour + 2 GB x 3.6 s x 0.0072) / 3600, no
    # people or ops (those are shared). The interval: idle (1 vCPU x 10 s x vCPU-hour +
    # 2 GB x 10 s x 0.0072) / 3600; shared people 10 s x 1.8 / 3600, ops 10 s x 0.36 / 3600.
    at_old = (Decimal("7.2") * Decimal("0.036") + Decimal("0.05184")) / 3600
    at_new = (Decimal("7.2") * Decimal("0.072") + Decimal("0.05184")) / 3600
    idle_old = (10 * Decimal("0.036") + Decimal("0.144")) / 3600
    idle_new = (10 * Decimal("0.072") + Decimal("0.144")) / 3600
    people, ops = Decimal("0.005"), Decimal("0.001")
    window = (now - timedelta(days=60), now)
    (same,) = [r for r in reprice(clickhouse, old.version, *window, ("worker",)) if r["worker"] == worker]
    assert same["stored_usd"] == same["repriced_usd"] == 2 * at_old + idle_old + people + ops   # reproduced

    # The vCPU price doubles from 20 days ago: the late batch and the interval change.
    new = _sheet(f"new-{tag}", (now - timedelta(days=90), 0.036), (now - timedelta(days=20), 0.072))
    assert sync_prices(clickhouse, new) == 2 * 9      # 8 unit prices + 1 GPU price per block
    (row,) = [r for r in reprice(clickhouse, new.version, *window, ("worker",)) if r["worker"] == worker]
    assert row["stored_usd"] == 2 * at_old + idle_old + people + ops
    assert row["repriced_usd"] == at_old + at_new + idle_new + people + ops == Decimal("0.0064848")
    assert row["people_usd"] == people and row["ops_usd"] == ops


@pytest.mark.integration
def test_prices_mirror_once_and_refuse_a_changed_sheet_under_the_same_version(clickhouse) -> None:
    version = f"mirror-{uuid.uuid4().hex[:8]}"
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    first = _sheet(version, (start, 0.036))
    assert sync_prices(clickhouse, first) == 9
    assert sync_prices(clickhouse, first) == 0
    with pytest.raises(PriceSheetError, match="already in ClickHouse with other prices"):
        sync_prices(clickhouse, _sheet(version, (start, 0.05)))
    with pytest.raises(PriceSheetError, match="no such sheet version"):
        reprice(clickhouse, f"absent-{version}", start, start + timedelta(days=1))


@pytest.mark.integration
def test_gpu_rows_reprice_with_the_matching_device_price(clickhouse) -> None:
    tenant = f"gpu-{uuid.uuid4().hex[:8]}"
    sheet = PriceSheet.load(env={})                 # h100 3.90, default 2.50
    sync_prices(clickhouse, sheet)
    groups = new_groups()
    groups[group_key(tenant, "v1", "click")].recommendations = 1
    now = time.time()
    events = [cost_event(f"b-{uuid.uuid4().hex}", Usage(wall_seconds=1.0, device_seconds=36.0, cpu_seconds=0.5,
                                                        device=device), groups, sheet, "w-gpu", 2.0, ts=now)
              for device in ("cuda:0 NVIDIA H100", "cuda:0 Tesla T4", "cpu")]
    write_events(clickhouse, events)
    rows = reprice(clickhouse, sheet.version, datetime.fromtimestamp(now - 60, timezone.utc),
                   datetime.fromtimestamp(now + 60, timezone.utc), ("device",), tenant=tenant)
    assert {r["device"]: r["repriced_usd"] for r in rows} == {r["device"]: r["stored_usd"] for r in rows}
    stored = {e["device"]: Decimal(e["cost"]["compute"]) for e in events}
    assert stored["cuda:0 NVIDIA H100"] - stored["cpu"] == Decimal("0.039")    # 36 s x 3.90 / 3600
    assert stored["cuda:0 Tesla T4"] - stored["cpu"] == Decimal("0.025")       # the default 2.50


def test_a_change_within_the_rows_rounding_is_no_change() -> None:
    from decimal import Decimal

    from reckon.streams.costs.repricing import price_change

    assert price_change(Decimal("0.000216"), Decimal("0.000216000018"), 300) == 0      # 1.8e-11 over 300 rows
    assert price_change(Decimal("0.000216"), Decimal("0.000216000018"), 1) == Decimal("1.8e-11")
    assert price_change(Decimal("1.50"), Decimal("1.80"), 10**6) == Decimal("0.30")       # a real change stays
