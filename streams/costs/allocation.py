"""Idle and shared cost spread over tenants and model versions: the rule every report uses.

OpenCost's allocation model over a window (the report's, or each minute of a chart):
idle (reserved capacity no batch used) and shared (people, ops, ClickHouse storage no tenant
caused) are distributed over the keys (tenants, or model versions) in proportion to each
key's workload cost in that window; `idle="separate"` keeps idle out, as its own line.
Parts are exact decimals that add up to the whole: each is rounded to 12 places and the
rounding rest goes to the key with the largest weight. A window with no workload has
nobody to spread over: all of its idle and shared cost stays unallocated.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Literal, TypeVar

K = TypeVar("K", bound=Hashable)
IdlePolicy = Literal["shared", "separate"]
IDLE_POLICIES: tuple[IdlePolicy, ...] = ("shared", "separate")
_Q = Decimal("0.000000000001")   # Decimal64(12), as ClickHouse stores money


@dataclass(frozen=True)
class Allocation:
    """One key's cost in a window: its own workload and the idle and shared spread onto it."""

    workload: Decimal
    idle: Decimal          # its share of idle (0 when idle is kept separate)
    shared: Decimal        # its share of shared
    all_idle: Decimal      # its share of idle whatever the policy: what fully loaded counts

    @property
    def attributed(self) -> Decimal:
        return self.workload + self.idle + self.shared

    @property
    def fully_loaded(self) -> Decimal:
        return self.workload + self.all_idle + self.shared


def spread(amount: Decimal, weights: Mapping[K, Decimal]) -> dict[K, Decimal]:
    """`amount` split over the keys with a positive weight, in proportion; the parts add up to
    `amount` exactly. Empty when no key has a positive weight."""
    keys = sorted((k for k, w in weights.items() if w > 0), key=lambda k: (-weights[k], repr(k)))
    if not keys:
        return {}
    whole = sum(weights[k] for k in keys)
    parts = {k: (amount * weights[k] / whole).quantize(_Q, rounding=ROUND_DOWN) for k in keys}
    parts[keys[0]] += amount - sum(parts.values())
    return parts


def allocate(workload: Mapping[K, Decimal], idle: Decimal, shared: Decimal,
             policy: IdlePolicy = "shared") -> dict[K, Allocation]:
    """Each key's workload plus its share of `idle` and `shared` (see the module docstring)."""
    if policy not in IDLE_POLICIES:
        raise ValueError(f"idle must be one of {IDLE_POLICIES}, got {policy!r}")
    idle_parts, shared_parts = spread(idle, workload), spread(shared, workload)
    zero = Decimal(0)
    return {k: Allocation(workload=w, idle=idle_parts.get(k, zero) if policy == "shared" else zero,
                          shared=shared_parts.get(k, zero), all_idle=idle_parts.get(k, zero))
            for k, w in workload.items()}


def per_1k(amount: Decimal, recommendations: int) -> Decimal | None:
    """Cost per 1,000 recommendations, at 12 places; None without recommendations."""
    return (amount * 1000 / recommendations).quantize(_Q) if recommendations else None
