"""Idle and shared intervals: workload + idle + shared = the worker's reserved cost."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from reckon.streams.costs.idle import IntervalAccountant, Reserved
from reckon.streams.costs.meter import cost_event, group_key, new_groups
from reckon.streams.costs.pricing import PriceSheet, Usage

BLOCK = {"effective_from": "2026-01-01T00:00:00Z", "vcpu_hour": 0.036, "gb_ram_hour": 0.0072,
         "state_gb_month": 0.10, "kafka_gb_in": 0.01, "kafka_gb_out": 0.01, "clickhouse_gb_month": 0.05,
         "people_hour": 1.8, "ops_hour": 0.36, "gpu_hour": {"h100": 3.6}}
SHEET = PriceSheet.from_dict({"version": "idle-test", "prices": [BLOCK]}, "test", env={})
T0 = 1_795_000_000.0     # a multiple of 10: interval boundaries fall on T0 + 10k


def batch(ts: float, wall: float, cpu: float, groups: dict[tuple[str, str], int], device: str = "cpu",
          ram_gb: float = 2.0, state_bytes: int = 0) -> dict:
    g = new_groups()
    for (tenant, version), recs in groups.items():
        g[group_key(tenant, version, "click")].events += recs
        g[group_key(tenant, version, "click")].recommendations += recs
    usage = Usage(wall_seconds=wall, device_seconds=wall / 2, cpu_seconds=cpu, bytes_in=0, bytes_out=0,
                  state_bytes=state_bytes, device=device)
    return cost_event(f"b-{ts}", usage, g, SHEET, "w", ram_gb, ts=ts)


def total(events: list[dict]) -> Decimal:
    return sum((Decimal(e["cost"]["total"]) for e in events), Decimal(0))


def hourly(reserved: Reserved, gpu: bool = False) -> Decimal:
    """The worker's reserved cost per hour under BLOCK (people and ops included)."""
    return (Decimal(repr(reserved.vcpus)) * Decimal("0.036") + Decimal(repr(reserved.ram_gb)) * Decimal("0.0072")
            + (Decimal(repr(reserved.gpus)) * Decimal("3.6") if gpu else 0) + Decimal("1.8") + Decimal("0.36"))


def test_workload_idle_shared_add_up_to_the_reservation() -> None:
    reserved = Reserved(vcpus=2, ram_gb=2)
    acc = IntervalAccountant(SHEET, reserved, "w", "cpu", interval_s=10, started_at=T0 + 3)
    batches = [batch(T0 + 5, 0.5, 0.4, {("acme", "v1"): 30}),
               batch(T0 + 10.2, 0.4, 0.3, {("acme", "v1"): 10, ("beta", "v2"): 30}),   # spans a boundary
               batch(T0 + 27, 1.0, 1.5, {("beta", "v2"): 20})]
    emitted: list[dict] = []
    for event in batches:
        acc.observe(event)
        emitted += acc.close_due(now=event["ts"])
    emitted += acc.close_due(now=T0 + 30.5)
    assert [e["interval"]["start"] for e in emitted if e["kind"] == "idle"] == [T0 + 3, T0 + 10, T0 + 20]
    emitted += acc.close_all(now=T0 + 33)
    assert acc.close_all(now=T0 + 40) == []               # once only
    idle = [e for e in emitted if e["kind"] == "idle"]
    shared = [e for e in emitted if e["kind"] == "shared"]
    assert sum(e["interval"]["seconds"] for e in idle) == pytest.approx(30.0)
    whole = total(batches) + total(idle) + total(shared)
    assert abs(whole - hourly(reserved) * 30 / 3600) < Decimal("1e-10")
    # The boundary batch's 0.4 s: 0.2 s before T0 + 10 and 0.2 s after.
    first, second = idle[0]["interval"]["used"], idle[1]["interval"]["used"]
    assert first["wall_seconds"] == pytest.approx(0.5 + 0.2)
    assert second["wall_seconds"] == pytest.approx(0.2)


def test_shared_is_the_workers_people_and_ops_for_the_whole_interval() -> None:
    """No batch carries people or ops: the interval's shared row has all of them, and like the
    idle row it names no tenant or version (reports spread both, streams/costs/allocation.py)."""
    acc = IntervalAccountant(SHEET, Reserved(1, 1), "w", "cpu", interval_s=10, started_at=T0)
    event = batch(T0 + 2, 0.5, 0.5, {("acme", "v1"): 30, ("beta", "v2"): 10})
    acc.observe(event)
    idle, shared = acc.close_due(now=T0 + 10)
    assert Decimal(event["cost"]["people"]) == Decimal(event["cost"]["ops"]) == 0
    assert Decimal(shared["cost"]["people"]) == Decimal("1.8") * 10 / 3600
    assert Decimal(shared["cost"]["ops"]) == Decimal("0.36") * 10 / 3600
    assert shared["usage"]["staffed_seconds"] == 10
    for row in (idle, shared):
        assert [(ln["tenant"], ln["model_version"]) for ln in row["lines"]] == [("", "")]


def test_an_interval_without_traffic_is_all_idle_and_unattributed_shared() -> None:
    acc = IntervalAccountant(SHEET, Reserved(1, 4, 1), "w", "cuda:0 h100", interval_s=5, started_at=T0)
    idle, shared = acc.close_due(now=T0 + 5.1)
    assert idle["kind"] == "idle" and idle["event_id"] == f"idle:w:{round(T0 * 1000)}"
    assert idle["usage"]["cpu_seconds"] == 5 and idle["usage"]["device_seconds"] == 5
    assert idle["usage"]["ram_gb_seconds"] == 20
    assert Decimal(idle["cost"]["compute"]) == (Decimal("0.036") * 5 + Decimal("3.6") * 5
                                                + Decimal("0.0072") * 20) / 3600
    assert Decimal(idle["cost"]["people"]) == 0
    assert total([idle, shared]) == hourly(Reserved(1, 4, 1), gpu=True) * 5 / 3600


def test_use_above_the_reservation_is_charged_not_made_negative_idle() -> None:
    """OpenCost: cost = max(reserved, used); idle never goes below zero."""
    acc = IntervalAccountant(SHEET, Reserved(vcpus=1, ram_gb=2), "w", "cpu", interval_s=10, started_at=T0)
    busy = batch(T0 + 9, 8.0, 16.0, {("acme", "v1"): 5})      # 2 cores for 8 s: 16 CPU-s > 10 reserved
    acc.observe(busy)
    idle = acc.close_due(now=T0 + 10)[0]
    assert idle["usage"]["cpu_seconds"] == 0
    assert idle["usage"]["ram_gb_seconds"] == pytest.approx(2 * 10 - 2 * 8)


def test_settings_validation() -> None:
    with pytest.raises(ValueError):
        IntervalAccountant(SHEET, Reserved(1, 1), "w", "cpu", interval_s=0)


def test_interval_rows_price_with_the_sheet_in_force() -> None:
    two = PriceSheet.from_dict({"version": "two", "prices": [BLOCK, {**BLOCK, "effective_from": "2026-06-01T00:00:00Z",
                                                                   "vcpu_hour": 0.072}]}, "test", env={})
    start = datetime(2026, 6, 1, tzinfo=timezone.utc).timestamp()
    acc = IntervalAccountant(two, Reserved(1, 0), "w", "cpu", interval_s=10, started_at=start - 10)
    before, _, after, _ = acc.close_due(now=start + 10)
    assert Decimal(after["cost"]["compute"]) == 2 * Decimal(before["cost"]["compute"])
