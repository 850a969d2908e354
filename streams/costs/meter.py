"""Measured usage per scored micro-batch, priced and allocated to its recommendations.

A cost event (topic `cost-events`) carries what was used, the price-sheet version, and
one line per (tenant, model_version, event_type) with that group's share of the batch.
Money travels as decimal strings so no float ever touches it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

import msgspec

from reckon.streams.costs.pricing import Cost, PriceSheet, Usage

_Q = Decimal("0.000000000001")
# The wire form is JSON; msgspec writes it ~4x faster than the json module (a batch's event
# carries every recommendation's latency), which keeps accounting's share of a batch small.
encode_event = msgspec.json.Encoder().encode


@dataclass
class BatchMeter:
    """Measures one batch: wall time, CPU time of the threads that did its work, device time, bytes.

    CPU is the batch thread's own clock (not the process's: other threads' work never leaks
    in) plus what the scoring calls measured on theirs (the scoring thread and ONNX Runtime's
    pool, reckon.models.serving.threads), which the batch thread waits for without using CPU,
    plus what the caller measured on other threads for it (the consumer's fetch thread).
    """

    device: str
    wall_start: float = field(default_factory=time.perf_counter)
    cpu_start: float = field(default_factory=time.thread_time)
    device_seconds: float = 0.0        # the scoring calls' device time (CPU: their CPU time)
    scoring_cpu_seconds: float = 0.0   # CPU of the scoring calls, on their own threads
    other_cpu_seconds: float = 0.0     # CPU other threads spent on the batch (fetching its records)
    bytes_in: int = 0
    bytes_out: int = 0

    def usage(self, state_bytes: int) -> Usage:
        return Usage(wall_seconds=time.perf_counter() - self.wall_start,
                     device_seconds=self.device_seconds,
                     cpu_seconds=time.thread_time() - self.cpu_start + self.scoring_cpu_seconds
                     + self.other_cpu_seconds,
                     bytes_in=self.bytes_in, bytes_out=self.bytes_out,
                     state_bytes=state_bytes, device=self.device)


@dataclass
class Group:
    events: int = 0
    recommendations: int = 0
    latencies_us: list[int] = field(default_factory=list)   # whole microseconds: ints write ~8x faster


def allocate(total: Cost, weights: list[int]) -> list[Cost]:
    """Split a cost by weights so the parts add up exactly to the whole (last part takes the rest)."""
    whole = sum(weights) or len(weights)
    parts: list[Cost] = []
    left = {k: getattr(total, k) for k in ("compute", "storage", "people", "ops")}
    for i, w in enumerate(weights):
        share = Decimal(w if sum(weights) else 1) / whole
        if i == len(weights) - 1:
            part = Cost(**left)
        else:
            part = Cost(**{k: (getattr(total, k) * share).quantize(_Q) for k in left})
            left = {k: left[k] - getattr(part, k) for k in left}
        parts.append(part)
    return parts


def cost_event(batch_id: str, usage: Usage, groups: dict[tuple[str, str, str], Group],
               sheet: PriceSheet, worker: str, ram_gb: float, ts: float | None = None) -> dict:
    """The wire form of one batch's cost, allocated to its groups by recommendations."""
    ts = time.time() if ts is None else ts
    total = sheet.price(usage, datetime.fromtimestamp(ts, timezone.utc), ram_gb=ram_gb)
    keys = sorted(groups)
    weights = [groups[k].recommendations or groups[k].events for k in keys]
    lines = []
    for key, part, weight in zip(keys, allocate(total, weights), weights):
        tenant, version, event_type = key
        g = groups[key]
        lines.append({"tenant": tenant, "model_version": version, "event_type": event_type,
                      "events": g.events, "recommendations": g.recommendations,
                      "share": weight / (sum(weights) or 1), "latencies_us": g.latencies_us,
                      "cost": part.wire()})
    return {"event_id": batch_id, "kind": "workload", "ts": ts, "worker": worker,
            "device": usage.device, "price_sheet_version": sheet.version,
            "usage": {"wall_seconds": usage.wall_seconds, "device_seconds": usage.device_seconds,
                      "cpu_seconds": usage.cpu_seconds, "bytes_in": usage.bytes_in,
                      "bytes_out": usage.bytes_out, "state_bytes": usage.state_bytes, "ram_gb": ram_gb,
                      "staffed_seconds": 0.0},   # people and ops are shared cost, never a batch's
            "cost": total.wire(), "lines": lines}


def group_key(tenant: str, model_version: str, event_type: str) -> tuple[str, str, str]:
    return (tenant, model_version, event_type)


def new_groups() -> defaultdict[tuple[str, str, str], Group]:
    return defaultdict(Group)
