"""Why a cost per 1,000 recommendations moved: two windows' reports, the change split into
parts that add up to it.

Fully loaded cost per 1k is a sum of parts, each part's cost over the same recommendations
(workload, idle, people, ops, other shared). A part's per-1k change splits exactly into

    C1/R1 - C0/R0  =  (C1 - C0)/R1      "from its cost": the part cost more or less
                   +  C0 (1/R1 - 1/R0)  "from volume": the same cost over more or fewer recommendations

so a jump in fixed costs' share when traffic falls reads as volume, and a model that works
harder per recommendation reads as workload cost. Workload per 1k is split once more over
model versions (recommendation-weighted): the mix (traffic moved to a version that costs
more per recommendation) and each version's own cost per recommendation.

Pure: two report dicts in (streams/reports/report.py, the JSON of `reckon costs --json`),
one dict out; money as decimal strings at 12 places, as everywhere else.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from reckon.models.core.money import usd, usd_string
from reckon.streams.costs import figures as F

__all__ = ["adjacent", "explain"]

_THOUSAND = Decimal(1000)


def _parts(totals: dict) -> dict[str, Decimal]:
    """A report's total cost as parts that add up to it (other shared: ClickHouse storage no
    tenant caused)."""
    shared, people, ops = (Decimal(totals[f.key]) for f in (F.SHARED, F.PEOPLE, F.OPS))
    return {"workload": Decimal(totals[F.WORKLOAD.key]), "idle": Decimal(totals[F.IDLE.key]),
            "people": people, "ops": ops, "other shared": shared - people - ops}


def adjacent(earlier: dict, later: dict) -> bool:
    """Whether the earlier report window ends where the later one starts (no --against)."""
    return datetime.fromisoformat(earlier["end"]) == datetime.fromisoformat(later["start"])


def _per_1k(amount: Decimal, recs: int) -> Decimal:
    return amount * _THOUSAND / recs


def explain(before: dict, after: dict) -> dict:
    """`after`'s fully loaded cost per 1k against `before`'s, split by part and by model version.
    Without recommendations in either window there is no per-1k figure to compare: the answer
    says so (`comparable` false) and still gives both windows' costs."""
    r0, r1 = int(before["totals"]["recommendations"]), int(after["totals"]["recommendations"])
    p0, p1 = _parts(before["totals"]), _parts(after["totals"])
    out: dict = {
        "before": {"window": before["window"], "recommendations": r0,
                   F.TOTAL.key: before["totals"][F.TOTAL.key]},
        "after": {"window": after["window"], "recommendations": r1,
                  F.TOTAL.key: after["totals"][F.TOTAL.key]},
        "comparable": bool(r0 and r1),
    }
    if not (r0 and r1):
        empty, hint = (("either window", "a longer --hours reaches further back") if not (r0 or r1) else
                       ("the earlier window", "a shorter --hours compares the latest traffic with what came just "
                        "before it" if adjacent(before["window"], after["window"]) else "an --against time with traffic before it") if not r0 else
                       ("the later window", "nothing was recommended lately"))
        hours = after["window"]["hours"]
        out["summary"] = f"no recommendations in {empty} ({hours:g} h each): no cost per 1k to compare; {hint}"
        return out
    rows = []
    for name, c0 in p0.items():
        c1 = p1[name]
        from_cost = (c1 - c0) * _THOUSAND / r1
        from_volume = c0 * _THOUSAND * (Decimal(1) / r1 - Decimal(1) / r0)
        rows.append({"part": name, "before_usd": usd_string(c0), "after_usd": usd_string(c1),
                     "per_1k_before_usd": usd_string(_per_1k(c0, r0)), "per_1k_after_usd": usd_string(_per_1k(c1, r1)),
                     "change_per_1k_usd": usd_string(from_cost + from_volume),
                     "from_cost_per_1k_usd": usd_string(from_cost), "from_volume_per_1k_usd": usd_string(from_volume)})
    total0, total1 = sum(p0.values(), Decimal(0)), sum(p1.values(), Decimal(0))
    change = _per_1k(total1, r1) - _per_1k(total0, r0)
    out |= {
        "fully_loaded_cost_per_1k": {"before_usd": usd_string(_per_1k(total0, r0)),
                                     "after_usd": usd_string(_per_1k(total1, r1)), "change_usd": usd_string(change)},
        "parts": sorted(rows, key=lambda r: -abs(Decimal(r["change_per_1k_usd"]))),
        "workload_by_version": _versions(before.get("by_version") or [], after.get("by_version") or [], r0, r1),
    }
    out["summary"] = _summary(out, r0, r1)
    return out


def _versions(before: list[dict], after: list[dict], r0: int, r1: int) -> dict:
    """Workload per 1k's change as Σ over versions of (share1 - share0) x w0 (the mix) +
    share1 x (w1 - w0) (each version's own cost per recommendation), w a version's workload
    cost per recommendation. A version new in the later window counts whole in the mix.
    Beside each version, the CPU and device milliseconds its recommendations took."""
    b, a = ({r["model_version"]: r for r in rows} for rows in (before, after))
    mix = own = Decimal(0)
    out = []
    for version in sorted(b.keys() | a.keys()):
        n0, n1 = (int(rows[version]["recommendations"]) if version in rows else 0 for rows in (b, a))
        w0 = Decimal(b[version][F.WORKLOAD.key]) / n0 if n0 else None
        w1 = Decimal(a[version][F.WORKLOAD.key]) / n1 if n1 else None
        s0, s1 = Decimal(n0) / r0, Decimal(n1) / r1
        base = w0 if w0 is not None else (w1 or Decimal(0))
        mix += (s1 - s0) * base * _THOUSAND
        mine = s1 * (w1 - w0) * _THOUSAND if w0 is not None and w1 is not None else Decimal(0)
        own += mine
        out.append({"model_version": version,
                    "workload_cost_per_1k_before_usd": None if w0 is None else usd_string(w0 * _THOUSAND),
                    "workload_cost_per_1k_after_usd": None if w1 is None else usd_string(w1 * _THOUSAND),
                    "own_cost_per_1k_usd": usd_string(mine), "share_before": float(s0), "share_after": float(s1),
                    **_milliseconds(b.get(version), n0, "before"), **_milliseconds(a.get(version), n1, "after")})
    return {"versions": out, "from_mix_per_1k_usd": usd_string(mix), "from_versions_own_cost_per_1k_usd": usd_string(own)}


def _milliseconds(row: dict | None, recs: int, when: str) -> dict[str, float | None]:
    """CPU and device ms per recommendation (None without recommendations, or from a worker
    whose report does not carry the seconds)."""
    out: dict[str, float | None] = {}
    for kind in ("cpu", "device"):
        seconds = (row or {}).get(f"workload_{kind}_seconds")
        out[f"{kind}_ms_per_recommendation_{when}"] = (
            round(seconds * 1000 / recs, 4) if seconds is not None and recs else None)
    return out


def _summary(out: dict, r0: int, r1: int) -> str:
    """One line: the direction, and the part that moved it most and why."""
    change = Decimal(out["fully_loaded_cost_per_1k"]["change_usd"])
    if change == 0:
        return f"{F.FULLY_LOADED_PER_1K.label} did not change"
    top = out["parts"][0]
    from_cost, from_volume = Decimal(top["from_cost_per_1k_usd"]), Decimal(top["from_volume_per_1k_usd"])
    if abs(from_volume) >= abs(from_cost):
        why = (f"mostly volume: recommendations went {r0:,} -> {r1:,}, "
               f"so {top['part']}'s cost is spread over {'fewer' if r1 < r0 else 'more'}")
    else:
        why = f"mostly its cost: {top['part']} went {usd(top['before_usd'])} -> {usd(top['after_usd'])}"
        if top["part"] == "workload":
            versions = out["workload_by_version"]
            mix, own = Decimal(versions["from_mix_per_1k_usd"]), Decimal(versions["from_versions_own_cost_per_1k_usd"])
            if abs(mix) > abs(own):
                why += " (traffic moved between model versions)"
            else:
                top_version = max(versions["versions"], key=lambda v: abs(Decimal(v["own_cost_per_1k_usd"])))
                why += f" (the versions' own cost per recommendation: {_cpu(top_version)})"
    return (f"{F.FULLY_LOADED_PER_1K.label} {'rose' if change > 0 else 'fell'} by {usd(abs(change))}; the largest "
            f"part is {top['part']} ({usd(top['change_per_1k_usd'])} per 1k), {why}")


def _cpu(version: dict) -> str:
    before, after = version["cpu_ms_per_recommendation_before"], version["cpu_ms_per_recommendation_after"]
    name = version["model_version"]
    if before is None or after is None:
        went = f"{usd(version['workload_cost_per_1k_before_usd'])} -> {usd(version['workload_cost_per_1k_after_usd'])}"
        return f"{name}'s {F.WORKLOAD_PER_1K.label} went {went}"
    return f"{name} took {before:.3g} -> {after:.3g} ms of CPU per recommendation"
