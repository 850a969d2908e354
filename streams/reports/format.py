"""How figures are written for people (text and HTML): money with a unit and sensible
precision, shares as percentages, counts with separators. JSON keeps the exact decimals."""

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


def share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def size(value: int) -> str:
    """Bytes as B, KB, MB, GB (powers of 1,000, as the price sheet's GB)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"
