"""How figures are written for people (text and HTML): money with a unit and sensible
precision, shares as percentages, counts with separators. JSON keeps the exact decimals."""

from __future__ import annotations

from reckon.models.core.money import usd

__all__ = ["count", "ms", "share", "size", "usd"]     # usd: the one rule for dollars, shared with models/


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
