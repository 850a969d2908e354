"""Idle and shared cost: what a worker pays for whether or not a batch uses it.

OpenCost's model, per interval of `cost_interval_s` seconds (aligned to the clock, so an
interval never straddles a minute when the length divides 60):

- a worker's compute cost for a resource (vCPU, GB RAM, GPU) is max(reserved, used) x
  time x unit price; batches carry what they used (`kind = workload`), the rest of the
  reservation is an `idle` row;
- people and ops are priced per worker hour: the interval's `shared` row carries them for
  the whole interval (no batch carries any);

both attributed to the worker and device, not to a tenant or version: reports spread them
over tenants and versions in proportion to workload cost, over the window they show
(streams/costs/allocation.py). So over any run of whole intervals
workload + idle + shared = the worker's total cost, and idle / (idle + workload compute)
is the share of paid capacity no batch used. A batch is split over the intervals its wall
time spans ([ts - wall, ts]).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone

from reckon.streams.costs.pricing import Cost, PriceSheet, Quantities


@dataclass(frozen=True)
class Reserved:
    """What one worker holds whether or not it scores anything (from settings)."""

    vcpus: float
    ram_gb: float
    gpus: float = 0.0


@dataclass
class _Bucket:
    cpu_seconds: float = 0.0
    device_seconds: float = 0.0
    ram_gb_seconds: float = 0.0
    wall_seconds: float = 0.0


class IntervalAccountant:
    """Collects what batches used per interval and prices what they did not.

    Call `observe` with every batch cost event right after the batch (no await between,
    so no batch is ever half-observed when an interval closes), `close_due` from a timer,
    and `close_all` once at shutdown.
    """

    def __init__(self, sheet: PriceSheet, reserved: Reserved, worker: str, device: str,
                 interval_s: float, started_at: float | None = None) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.sheet = sheet
        self.reserved = reserved
        self.worker = worker
        self.device = device
        self.interval_s = interval_s
        self._start = time.time() if started_at is None else started_at
        self._buckets: dict[int, _Bucket] = defaultdict(_Bucket)
        self._closed = False

    def observe(self, event: dict) -> None:
        """Account one workload cost event (the wire form from reckon.streams.costs.meter.cost_event)."""
        usage = event["usage"]
        end = float(event["ts"])
        wall = float(usage["wall_seconds"])
        begin = max(end - wall, self._start)   # a batch cannot use an interval already emitted
        span = max(end - begin, 0.0)
        gpu_seconds = float(usage["device_seconds"]) if event["device"].startswith("cuda") else 0.0
        totals = {"cpu_seconds": float(usage["cpu_seconds"]), "device_seconds": gpu_seconds,
                  "ram_gb_seconds": float(usage.get("ram_gb", 0.0)) * wall, "wall_seconds": wall}
        first, last = self._index(begin), self._index(max(end, begin))
        for index in range(first, last + 1):
            lo = max(begin, index * self.interval_s)
            hi = min(end, (index + 1) * self.interval_s)
            share = (hi - lo) / span if span > 0 else (1.0 if index == last else 0.0)
            if share <= 0:
                continue
            bucket = self._buckets[index]
            for name, total in totals.items():
                setattr(bucket, name, getattr(bucket, name) + total * share)

    def close_due(self, now: float | None = None) -> list[dict]:
        """Cost events for every interval that ended at or before `now`."""
        now = time.time() if now is None else now
        return self._close_until(self._index(now) * self.interval_s)

    def close_all(self, now: float | None = None) -> list[dict]:
        """At shutdown: every interval up to `now`, the last one partial. Idempotent."""
        if self._closed:
            return []
        self._closed = True
        now = time.time() if now is None else now
        return self._close_until(max(now, self._start))

    def _index(self, ts: float) -> int:
        return math.floor(ts / self.interval_s)

    def _close_until(self, until: float) -> list[dict]:
        out: list[dict] = []
        while self._start < until:
            index = self._index(self._start)
            end = min((index + 1) * self.interval_s, until)
            out.extend(self._interval_events(self._start, end, self._buckets.pop(index, _Bucket())))
            self._start = end
        return out

    def _interval_events(self, start: float, end: float, used: _Bucket) -> list[dict]:
        seconds = end - start
        r = self.reserved
        gpus = r.gpus if self.device.startswith("cuda") else 0.0
        idle = Quantities(
            wall_seconds=max(seconds - used.wall_seconds, 0.0),
            cpu_seconds=max(r.vcpus * seconds - used.cpu_seconds, 0.0),
            device_seconds=max(gpus * seconds - used.device_seconds, 0.0),
            ram_gb_seconds=max(r.ram_gb * seconds - used.ram_gb_seconds, 0.0),
            device=self.device)
        shared = Quantities(wall_seconds=seconds, staffed_seconds=seconds, device=self.device)
        when = datetime.fromtimestamp(start, timezone.utc)
        stamp = f"{self.worker}:{round(start * 1000)}"
        common = {"ts": start, "worker": self.worker, "device": self.device,
                  "price_sheet_version": self.sheet.version,
                  "interval": {"start": start, "end": end, "seconds": seconds,
                               "reserved": {"vcpus": r.vcpus, "ram_gb": r.ram_gb, "gpus": gpus},
                               "used": {"cpu_seconds": used.cpu_seconds, "device_seconds": used.device_seconds,
                                        "ram_gb_seconds": used.ram_gb_seconds,
                                        "wall_seconds": used.wall_seconds}}}
        idle_cost = self.sheet.price_quantities(idle, when)
        shared_cost = self.sheet.price_quantities(shared, when)
        return [
            {"event_id": f"idle:{stamp}", "kind": "idle", **common, "usage": _usage(idle),
             "cost": idle_cost.wire(), "lines": [_line(idle_cost)]},
            {"event_id": f"shared:{stamp}", "kind": "shared", **common, "usage": _usage(shared),
             "cost": shared_cost.wire(), "lines": [_line(shared_cost)]},
        ]


def _line(cost: Cost) -> dict:
    """The worker's one line: no tenant or version (reports allocate it, see the module docstring)."""
    return {"tenant": "", "model_version": "", "event_type": "", "events": 0, "recommendations": 0,
            "share": 1.0, "latencies_us": [], "cost": cost.wire()}


def _usage(q: Quantities) -> dict:
    # Interval rows carry RAM as GB x seconds directly (batches carry ram_gb and their wall time).
    return {"wall_seconds": q.wall_seconds, "device_seconds": q.device_seconds,
            "cpu_seconds": q.cpu_seconds, "ram_gb_seconds": q.ram_gb_seconds, "bytes_in": 0,
            "bytes_out": 0, "state_bytes": 0, "staffed_seconds": q.staffed_seconds}
