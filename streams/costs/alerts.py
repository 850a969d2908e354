"""Cost alert detectors, pure: numbers in, verdicts out (streams/costs/alert_engine.py feeds them).

Anomaly: a robust z-score of the latest minute against a trailing window of minutes,

    z = (x - median) / max(1.4826 * MAD, rel_floor * median)

flagging spikes only (costs that jump, not costs that fall), and only when the value is
also at least `min_ratio` x the median: MAD alone is tiny on a very steady series, and a
pager must not fire on a 10 % wobble. No verdict before `warmup` minutes of history.

Budget: burn rate = cost in a window / (daily budget x window / 1 day), so 1.0 spends
exactly the budget in a day. Like SRE multi-window burn-rate alerts, a short and a long
window must both burn fast: the long one proves it is sustained, the short one that it is
still happening (so the alert stops soon after the spend does).
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal

KINDS = ("anomaly", "budget")
SEVERITIES = ("warning", "critical")
MAD_TO_SIGMA = 1.4826   # MAD of a normal distribution x this = its standard deviation


@dataclass(frozen=True)
class DetectorConfig:
    window: int = 60          # trailing minutes compared against
    warmup: int = 15          # minutes of history needed before any verdict
    z: float = 6.0            # robust z-score threshold
    min_ratio: float = 2.0    # and at least this multiple of the median
    rel_floor: float = 0.05   # scale never below 5 % of the median (flat series)

    def __post_init__(self) -> None:
        if self.warmup < 3 or self.window < self.warmup:
            raise ValueError("need 3 <= warmup <= window")
        if self.z <= 0 or self.min_ratio < 1 or self.rel_floor <= 0:
            raise ValueError("need z > 0, min_ratio >= 1, rel_floor > 0")


@dataclass(frozen=True)
class BurnConfig:
    short_minutes: int = 5
    long_minutes: int = 60
    warning: float = 2.0      # both windows burning at >= 2x the daily budget's rate
    critical: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.short_minutes < self.long_minutes <= 1440:
            raise ValueError("need 0 < short_minutes < long_minutes <= 1440")
        if not 0 < self.warning <= self.critical:
            raise ValueError("need 0 < warning <= critical")


@dataclass(frozen=True)
class Verdict:
    observed: float
    expected: float
    score: float              # robust z for anomalies, the short window's burn rate for budgets
    severity: str


@dataclass(frozen=True)
class Alert:
    """The `cost-alerts` contract: {alert_id, kind, dims, observed, expected, severity, window, ts}."""

    kind: str
    metric: str
    dims: dict[str, str]
    observed: float
    expected: float
    severity: str
    window: str
    ts: float                 # when the alert was raised (unix seconds)
    data_ts: float            # the minute, or the window end, it is about
    alert_id: str = field(default="")

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.severity not in SEVERITIES:
            raise ValueError(f"bad alert kind/severity {self.kind}/{self.severity}")
        if not self.alert_id:
            object.__setattr__(self, "alert_id", alert_id(self.kind, self.metric, self.dims,
                                                          self.severity, self.data_ts))

    def to_wire(self) -> dict:
        return asdict(self)


def alert_id(kind: str, metric: str, dims: dict[str, str], severity: str, data_ts: float) -> str:
    """Stable id from what the alert is about: re-evaluating the same minute never re-alerts."""
    key = "|".join([kind, metric, severity, str(round(data_ts))] + [f"{k}={dims[k]}" for k in sorted(dims)])
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def detect_spike(history: Sequence[float], value: float, cfg: DetectorConfig = DetectorConfig()) -> Verdict | None:
    """A verdict when `value` is a spike against the last `cfg.window` values of `history`."""
    recent = list(history)[-cfg.window:]
    if len(recent) < cfg.warmup:
        return None
    median = statistics.median(recent)
    mad = statistics.median(abs(x - median) for x in recent)
    scale = max(MAD_TO_SIGMA * mad, cfg.rel_floor * abs(median), 1e-12)
    z = (value - median) / scale
    if z < cfg.z or value < cfg.min_ratio * median or value <= 0:
        return None
    critical = median <= 0 or value >= 2 * cfg.min_ratio * median
    return Verdict(observed=value, expected=median, score=z, severity="critical" if critical else "warning")


def burn_rate(cost_usd: Decimal, window_minutes: int, daily_budget_usd: Decimal) -> float:
    """How many times faster than the daily budget allows this window spent."""
    if daily_budget_usd <= 0:
        raise ValueError("a daily budget must be > 0")
    return float(cost_usd * 1440 / (daily_budget_usd * window_minutes))


def budget_pace(metric: str, observed: float, expected: float) -> float | None:
    """A budget alert's long-window spend over what its budget allows there (its burn rate over
    that window); None for other alerts, whose observed and expected are plain dollars."""
    return observed / expected if metric == "burn_rate" and expected > 0 else None


def check_budget(short_cost: Decimal, long_cost: Decimal, daily_budget_usd: Decimal,
                 cfg: BurnConfig = BurnConfig()) -> Verdict | None:
    """A verdict when both windows burn the daily budget at >= the warning (or critical) rate."""
    short = burn_rate(short_cost, cfg.short_minutes, daily_budget_usd)
    long_ = burn_rate(long_cost, cfg.long_minutes, daily_budget_usd)
    slowest = min(short, long_)
    if slowest < cfg.warning:
        return None
    severity = "critical" if slowest >= cfg.critical else "warning"
    # observed: spend over the long window; expected: what the budget allows over it.
    allowed = float(daily_budget_usd) * cfg.long_minutes / 1440
    return Verdict(observed=float(long_cost), expected=allowed, score=short, severity=severity)
