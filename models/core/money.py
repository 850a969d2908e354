"""Dollars as every command writes them for people (`reckon costs`, the model commands, the
benchmarks): one rule, so a figure reads the same wherever it appears. JSON keeps the exact
decimals."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

_CENT = Decimal("0.01")


def usd(value: object) -> str:
    """'$1,234.57' from a dollar up; three significant digits below ('$0.00369'); '-' for none."""
    if value is None:
        return "-"
    amount = Decimal(str(value))
    if amount == 0:
        return "$0"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount >= 1:
        return f"{sign}${amount.quantize(_CENT, rounding=ROUND_HALF_EVEN):,}"
    step = Decimal(1).scaleb(amount.adjusted() - 2)          # the third significant digit
    return f"{sign}${amount.quantize(step, rounding=ROUND_HALF_EVEN):f}"
