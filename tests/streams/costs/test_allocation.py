"""Idle and shared cost spread over tenants and versions: exact parts, in proportion to workload."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reckon.streams.costs.allocation import allocate, per_1k, spread

D = Decimal


def test_spread_is_proportional_and_exact() -> None:
    parts = spread(D("1"), {"a": D("2"), "b": D("1"), "c": D("0")})
    assert parts == {"a": D("0.666666666667"), "b": D("0.333333333333")}   # the rest goes to the largest
    assert sum(parts.values()) == D("1")
    assert spread(D("5"), {"a": D(0)}) == {}                                # nobody to spread over


@given(amount=st.decimals(min_value=0, max_value=10**6, places=12),
       weights=st.lists(st.decimals(min_value=0, max_value=10**3, places=12), min_size=1, max_size=20))
def test_parts_always_add_up_to_the_whole(amount: Decimal, weights: list[Decimal]) -> None:
    parts = spread(amount, dict(enumerate(weights)))
    if any(w > 0 for w in weights):
        assert sum(parts.values()) == amount
        assert all(p >= 0 for p in parts.values())
    else:
        assert parts == {}


def test_allocate_shares_idle_or_keeps_it_separate() -> None:
    workload = {("acme", "v1"): D("0.003"), ("beta", "v2"): D("0.001")}
    shared = allocate(workload, idle=D("0.04"), shared=D("0.8"))
    assert shared[("acme", "v1")].idle == D("0.03") and shared[("acme", "v1")].shared == D("0.6")
    assert sum(a.attributed for a in shared.values()) == D("0.844")          # everything, exactly
    separate = allocate(workload, idle=D("0.04"), shared=D("0.8"), policy="separate")
    assert sum(a.attributed for a in separate.values()) == D("0.804")        # idle left out
    assert all(a.fully_loaded == shared[k].attributed for k, a in separate.items())   # idle back in
    with pytest.raises(ValueError, match="idle must be one of"):
        allocate(workload, D(0), D(0), policy="evenly")  # type: ignore[arg-type]


def test_cost_per_1k() -> None:
    assert per_1k(D("0.5"), 2000) == D("0.25") and per_1k(D("0.5"), 0) is None
