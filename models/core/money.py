"""Dollars as every command writes them for people (`reckon costs`, the model commands, the
benchmarks): one rule, so a figure reads the same wherever it appears. JSON keeps the exact
decimals."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

_CENT = Decimal("0.01")
_PLACES = Decimal("0.000000000001")
# Room for any number a JSON file gives Python (floats to ~1.8e308, ints to 4,300 digits) at 12 places
_WIDE = Context(prec=5000)


def usd(value: object) -> str:
    """'$1,234.57' from a dollar up; three significant digits below ('$0.00369'); '-' for none."""
    if value is None:
        return "-"
    amount = Decimal(str(value))
    if not amount.is_finite():       # NaN or infinity read from a file: no amount to show
        return "-"
    if amount == 0:
        return "$0"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount >= 1:
        return f"{sign}${amount.quantize(_CENT, rounding=ROUND_HALF_EVEN, context=_WIDE):,}"
    step = Decimal(1).scaleb(amount.adjusted() - 2)          # the third significant digit
    return f"{sign}${amount.quantize(step, rounding=ROUND_HALF_EVEN, context=_WIDE):f}"


def usd_strings(value: Any) -> Any:
    """A JSON-able value with every number under a key ending in `_usd` as a decimal string at
    12 places, the form every `--json` gives money in (manifests store floats)."""
    if isinstance(value, dict):
        return {k: _decimal_string(v) if k.endswith("_usd") else usd_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [usd_strings(v) for v in value]
    return value


def usd_string(value: Decimal) -> str:
    """Dollars as JSON carries them: a decimal string at 12 places, fixed point (never "4.2E-7")."""
    return f"{value.quantize(_PLACES, rounding=ROUND_HALF_EVEN, context=_WIDE):f}"


def _decimal_string(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None                  # not an amount (a manifest is read as Python's json reads NaN)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return usd_string(Decimal(repr(value)))
    return usd_strings(value)
