"""Alert detectors, pure: spikes flagged, a noisy steady day left alone, budgets burned."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import pytest

from reckon.streams.costs.alerts import Alert, BurnConfig, DetectorConfig, burn_rate, check_budget, detect_spike


def noisy_day(seed: int = 11, base: float = 0.02) -> list[float]:
    """1440 minutes of a steady service: a diurnal swing of +-30 %, 15 % gaussian noise, and a
    1.4x burst now and then (batching, a slow partition) - busy, but nothing abnormal."""
    rng = random.Random(seed)
    out = []
    for minute in range(1440):
        diurnal = 1 + 0.3 * math.sin(2 * math.pi * minute / 1440)
        burst = 1.4 if rng.random() < 0.02 else 1.0
        out.append(max(base * diurnal * burst * rng.gauss(1.0, 0.15), 0.0))
    return out


def test_a_5x_spike_is_flagged_critical() -> None:
    series = noisy_day()
    history, now = series[:600], series[600]
    verdict = detect_spike(history, 5 * now)
    assert verdict is not None and verdict.severity == "critical"
    assert verdict.observed == 5 * now and verdict.expected == pytest.approx(sorted(history[-60:])[30], rel=0.1)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_steady_noisy_day_raises_nothing(seed: int) -> None:
    series = noisy_day(seed)
    flagged = [i for i in range(1, len(series)) if detect_spike(series[:i], series[i])]
    assert flagged == []
    per_1k = [cost * 1000 / max(recs, 1) for cost, recs in
              zip(series, (random.Random(seed).randint(900, 1100) for _ in series))]
    assert [i for i in range(1, len(per_1k)) if detect_spike(per_1k[:i], per_1k[i])] == []


def test_every_injected_spike_in_a_day_is_caught() -> None:
    series = noisy_day(7)
    spikes = list(range(100, 1440, 97))
    for i in spikes:
        series[i] *= 5
    flagged = [i for i in range(1, len(series)) if detect_spike(series[:i], series[i])]
    assert flagged == spikes


def test_warm_up_and_flat_series() -> None:
    cfg = DetectorConfig(window=30, warmup=10)
    assert detect_spike([1.0] * 9, 50.0, cfg) is None                   # not enough history yet
    assert detect_spike([1.0] * 10, 1.1, cfg) is None                   # MAD 0: a 10 % wobble is no spike
    assert detect_spike([1.0] * 10, 3.0, cfg).severity == "warning"     # 3x: yes
    assert detect_spike([1.0] * 10, 0.1, cfg) is None                   # drops are not spikes
    assert detect_spike([0.0] * 10, 0.0, cfg) is None
    with pytest.raises(ValueError):
        DetectorConfig(window=5, warmup=10)


def test_burn_rate_against_a_daily_budget() -> None:
    assert burn_rate(Decimal("1"), 60, Decimal("24")) == 1.0            # $1 an hour on $24 a day
    cfg = BurnConfig(short_minutes=5, long_minutes=60, warning=2, critical=10)
    budget = Decimal("24")
    assert check_budget(Decimal("0.5"), Decimal("3"), budget, cfg) is not None          # 6x and 3x: warning
    assert check_budget(Decimal("0.5"), Decimal("3"), budget, cfg).severity == "warning"
    assert check_budget(Decimal("1"), Decimal("12"), budget, cfg).severity == "critical"  # 12x both
    assert check_budget(Decimal("1"), Decimal("1.5"), budget, cfg) is None    # a burst, not sustained
    assert check_budget(Decimal("0"), Decimal("12"), budget, cfg) is None     # sustained but over
    with pytest.raises(ValueError):
        BurnConfig(short_minutes=60, long_minutes=5)
    with pytest.raises(ValueError):
        burn_rate(Decimal(1), 5, Decimal(0))


def test_alert_contract_and_stable_ids() -> None:
    dims = {"tenant": "acme", "model_version": "v1"}
    one = Alert(kind="anomaly", metric="cost_usd", dims=dims, observed=5.0, expected=1.0, severity="critical",
                window="60m", ts=1000.0, data_ts=960.0)
    again = Alert(kind="anomaly", metric="cost_usd", dims=dict(reversed(list(dims.items()))), observed=6.0,
                  expected=1.0, severity="critical", window="60m", ts=1010.0, data_ts=960.0)
    later = Alert(kind="anomaly", metric="cost_usd", dims=dims, observed=5.0, expected=1.0, severity="critical",
                  window="60m", ts=1070.0, data_ts=1020.0)
    assert one.alert_id == again.alert_id != later.alert_id
    wire = one.to_wire()
    assert {"alert_id", "kind", "dims", "observed", "expected", "severity", "window", "ts"} <= set(wire)
    with pytest.raises(ValueError):
        Alert(kind="panic", metric="x", dims={}, observed=1, expected=1, severity="warning", window="", ts=0,
              data_ts=0)


def test_a_budget_alert_reads_as_dollars_and_its_multiple_of_the_pace() -> None:
    """A $0.16 spend against $0.0004 allowed read '0.2x / 0.0x' in the report: dollars shown as a ratio."""
    from reckon.streams.costs.alert_engine import webhook_payload
    from reckon.streams.costs.alerts import Alert
    from reckon.streams.reports.tables import _alert_value

    alert = Alert(kind="budget", metric="burn_rate", dims={"tenant": "*"}, observed=0.161662,
                  expected=0.000416667, severity="critical", window="60m/360m", ts=1.0, data_ts=1.0)
    row = {"metric": "burn_rate", "observed": "0.161662", "expected": "0.000416667"}
    assert _alert_value(row, "observed") == "$0.162 (388.0x)" and _alert_value(row, "expected") == "$0.000417"
    assert webhook_payload(alert)["text"].endswith("observed $0.162, expected $0.000417 (388.0x the budget's pace)")


def test_an_anomaly_alert_says_how_to_ask_why() -> None:
    from reckon.streams.costs.alert_engine import webhook_payload
    from reckon.streams.costs.alerts import Alert

    jump = Alert(kind="anomaly", metric="workload_cost_per_1k", dims={"tenant": "acme; rm -rf /", "model_version": "v2"},
                 observed=0.4, expected=0.1, severity="warning", window="60m", ts=1_796_500_000.0,
                 data_ts=1_796_499_900.0)
    # the window ends with the alert's minute (data_ts is its start), whenever the command is run
    assert webhook_payload(jump)["text"].endswith("; why: reckon costs --why --hours 0.25 --end "
                                                  "2026-12-05T19:46:00+00:00 --tenant 'acme; rm -rf /'")
