"""`reckon costs --why`: the change in cost per 1k split into parts that add up to it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from reckon.streams.costs.idle import IntervalAccountant, Reserved
from reckon.streams.costs.meter import cost_event, group_key, new_groups
from reckon.streams.costs.pricing import PriceSheet, Usage
from reckon.streams.reports.html import render_why_html
from reckon.streams.reports.text import render_why
from reckon.streams.reports.why import explain

WINDOW = {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-01T01:00:00+00:00", "hours": 1.0,
          "tenant": None, "idle": "shared", "attribution_window_s": 1800}


def _report(recs: dict[str, int], workload: dict[str, str], idle: str, people: str, ops: str,
            storage: str = "0", cpu: dict[str, float] | None = None) -> dict:
    """A report as build_report shapes it, with only what --why reads."""
    shared = Decimal(people) + Decimal(ops) + Decimal(storage)
    total = sum((Decimal(v) for v in workload.values()), Decimal(0)) + Decimal(idle) + shared
    return {"window": WINDOW,
            "totals": {"recommendations": sum(recs.values()), "total_cost_usd": str(total),
                       "workload_cost_usd": str(sum((Decimal(v) for v in workload.values()), Decimal(0))),
                       "idle_cost_usd": idle, "shared_cost_usd": str(shared), "people_cost_usd": people,
                       "ops_cost_usd": ops},
            "by_version": [{"model_version": v, "recommendations": n, "workload_cost_usd": workload[v],
                            **({"workload_cpu_seconds": cpu[v]} if cpu else {})} for v, n in recs.items()]}


def _change(answer: dict) -> Decimal:
    return Decimal(answer["fully_loaded_cost_per_1k"]["change_usd"])


def test_parts_add_up_to_the_change_and_fixed_cost_over_less_traffic_reads_as_volume() -> None:
    before = _report({"v1": 1000}, {"v1": "0.010"}, idle="0.50", people="1.50", ops="0.20", storage="0.01")
    after = _report({"v1": 250}, {"v1": "0.0025"}, idle="0.55", people="1.50", ops="0.20", storage="0.01")
    answer = explain(before, after)
    per_1k = answer["fully_loaded_cost_per_1k"]
    assert Decimal(per_1k["before_usd"]) == Decimal("2.22") and Decimal(per_1k["after_usd"]) == Decimal("9.05")
    parts = {p["part"]: p for p in answer["parts"]}
    assert set(parts) == {"workload", "idle", "people", "ops", "other shared"}
    assert abs(sum(Decimal(p["change_per_1k_usd"]) for p in parts.values()) - _change(answer)) < Decimal("1e-11")
    for p in parts.values():       # each part's change is its cost's and its volume's, exactly
        assert Decimal(p["from_cost_per_1k_usd"]) + Decimal(p["from_volume_per_1k_usd"]) == \
            Decimal(p["change_per_1k_usd"])
    # people cost the same in both windows: all of its per-1k rise is volume (1.50 over 1000, then over 250)
    assert Decimal(parts["people"]["from_cost_per_1k_usd"]) == 0
    assert Decimal(parts["people"]["from_volume_per_1k_usd"]) == Decimal("4.5")
    # the model's own cost per recommendation did not move: workload per 1k is flat
    assert Decimal(parts["workload"]["change_per_1k_usd"]) == 0
    assert answer["parts"][0]["part"] == "people"                       # largest first
    assert "mostly volume" in answer["summary"] and "1,000 -> 250" in answer["summary"]
    assert answer["summary"].startswith("fully loaded cost per 1k rose by $6.83")


def test_traffic_moving_to_a_costlier_version_is_the_mix_not_the_versions_own_cost() -> None:
    before = _report({"v1": 900, "v2": 100}, {"v1": "0.90", "v2": "0.30"}, idle="0", people="0", ops="0")
    after = _report({"v1": 100, "v2": 900}, {"v1": "0.10", "v2": "2.70"}, idle="0", people="0", ops="0")
    answer = explain(before, after)
    versions = answer["workload_by_version"]
    # v1 $1 per 1k, v2 $3 per 1k in both windows: 80 % of traffic moved to v2
    assert Decimal(versions["from_mix_per_1k_usd"]) == Decimal("1.6")
    assert Decimal(versions["from_versions_own_cost_per_1k_usd"]) == 0
    assert _change(answer) == Decimal("1.6")
    assert [(v["model_version"], v["share_before"], v["share_after"]) for v in versions["versions"]] == \
        [("v1", 0.9, 0.1), ("v2", 0.1, 0.9)]
    assert "mostly its cost: workload" in answer["summary"] and "moved between model versions" in answer["summary"]

    # the same version getting dearer per recommendation is its own cost, and a new version is all mix
    dearer = explain(before, _report({"v1": 900, "v2": 100}, {"v1": "1.80", "v2": "0.30"}, "0", "0", "0"))
    assert Decimal(dearer["workload_by_version"]["from_versions_own_cost_per_1k_usd"]) == Decimal("0.9")
    assert Decimal(dearer["workload_by_version"]["from_mix_per_1k_usd"]) == 0
    assert dearer["summary"].endswith("(the versions' own cost per recommendation: v1's workload cost per 1k went "
                                      "$1.00 -> $2.00)")
    # with the seconds the report carries, the cause reads as the work a recommendation took
    cpu0, cpu1 = {"v1": 0.9, "v2": 0.3}, {"v1": 1.8, "v2": 0.3}
    slower = explain(_report({"v1": 900, "v2": 100}, {"v1": "0.90", "v2": "0.30"}, "0", "0", "0", cpu=cpu0),
                     _report({"v1": 900, "v2": 100}, {"v1": "1.80", "v2": "0.30"}, "0", "0", "0", cpu=cpu1))
    assert slower["summary"].endswith("v1 took 1 -> 2 ms of CPU per recommendation)")
    (v1, v2) = slower["workload_by_version"]["versions"]
    assert (v1["cpu_ms_per_recommendation_before"], v1["cpu_ms_per_recommendation_after"]) == (1.0, 2.0)
    assert v2["device_ms_per_recommendation_after"] is None          # not in these reports: not made up
    new = explain(before, _report({"v3": 1000}, {"v3": "5"}, "0", "0", "0"))
    rows = {v["model_version"]: v for v in new["workload_by_version"]["versions"]}
    assert rows["v3"]["workload_cost_per_1k_before_usd"] is None and rows["v1"]["workload_cost_per_1k_after_usd"] is None
    assert Decimal(new["workload_by_version"]["from_mix_per_1k_usd"]) == _change(new) == Decimal("3.8")


def test_a_window_without_recommendations_has_no_per_1k_to_compare() -> None:
    quiet = _report({}, {}, idle="0.5", people="1.5", ops="0.2")
    busy = _report({"v1": 10}, {"v1": "0.01"}, idle="0.5", people="1.5", ops="0.2")
    for before, after, which in ((quiet, busy, "the earlier window"), (busy, quiet, "the later window"),
                                 (quiet, quiet, "either window")):
        answer = explain(before, after)
        assert answer["comparable"] is False and which in answer["summary"] and "parts" not in answer
        assert answer["summary"].endswith({"the earlier window": "before it", "the later window": "lately",
                                           "either window": "further back"}[which])
        out = io.StringIO()
        render_why(answer, Console(file=out, width=80))
        assert which in out.getvalue()
    same = explain(busy, busy)
    assert _change(same) == 0 and same["summary"] == "fully loaded cost per 1k did not change"


def test_the_html_page_escapes_names_from_the_data() -> None:
    hostile = "<script>alert(1)</script>"
    before = _report({"v1": 1000}, {"v1": "0.010"}, idle="0.50", people="1.50", ops="0.20")
    after = _report({hostile: 250}, {hostile: "0.0025"}, idle="0.55", people="1.50", ops="0.20")
    page = render_why_html(explain(before, after))
    assert hostile not in page and "&lt;script&gt;" in page and "By part" in page


def test_text_names_each_part_and_fits_80_columns() -> None:
    before = _report({"v1": 1000}, {"v1": "0.010"}, idle="0.50", people="1.50", ops="0.20")
    after = _report({"v1": 250, "v2-" + "x" * 60: 50}, {"v1": "0.0025", "v2-" + "x" * 60: "0.02"}, idle="0.55",
                    people="1.50", ops="0.20")
    out = io.StringIO()
    render_why(explain(before, after), Console(file=out, width=80))
    text = out.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines())
    for expected in ("people", "idle", "ops", "workload", "from volume", "share of recs", "100.0% -> 83.3%", "$2.21 -> $7.58", "+$3.50"):
        assert expected in text


def _batch(version: str, ts: float, recs: int, cpu: float, worker: str) -> dict:
    groups = new_groups()
    key = group_key("acme", version, "click")
    groups[key].events = groups[key].recommendations = recs
    groups[key].latencies_us = [10_000] * recs
    usage = Usage(wall_seconds=cpu, device_seconds=cpu, cpu_seconds=cpu, bytes_in=recs * 200, bytes_out=recs * 300)
    return cost_event(f"b-{uuid.uuid4().hex}", usage, groups, PriceSheet.load(env={}), worker, 2.0, ts=ts)


@pytest.mark.integration
def test_costs_why_reads_the_store_and_names_the_cause(tmp_path: Path) -> None:
    """Two hours of a worker's cost rows: in the first, v1 answers 600 recommendations; in the
    second, v2 (ten times its CPU per recommendation) answers 200. Both causes are in the answer."""
    dsn = f"chdb://{tmp_path / 'store'}"
    now = time.time()
    events = []
    for hour, (version, recs, cpu) in enumerate((("v1", 60, 0.5), ("v2", 20, 1.7))):
        start = now - 2 * 3600 + hour * 3600 + 600     # each batch well inside its hour
        acc = IntervalAccountant(PriceSheet.load(env={}), Reserved(2, 2), "w-why", "cpu", interval_s=60,
                                 started_at=start)
        batches = [_batch(version, start + 60 * i + 5, recs, cpu, "w-why") for i in range(10)]
        for b in batches:
            acc.observe(b)
        events += batches + acc.close_all(now=start + 600)
    # written by a process of its own: one process holds one chdb store, and this one holds the suite's
    (tmp_path / "events.json").write_text(json.dumps(events))
    write = ("import json, sys; from reckon.streams.clickhouse.client import connect; "
             "from reckon.streams.clickhouse.migrations import migrate; from reckon.streams.sink.rows import write_events; "
             "ch = connect(sys.argv[1]); migrate(ch); write_events(ch, json.load(open(sys.argv[2]))); ch.close()")
    subprocess.run([sys.executable, "-c", write, dsn, str(tmp_path / "events.json")], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECKON_")} | {
        "RECKON_CLICKHOUSE_DSN": dsn, "RECKON_DATA_DIR": str(tmp_path / "data")}
    run = subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "costs", "--why", "--hours", "1",
                          "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["before"]["recommendations"] == 600 and answer["after"]["recommendations"] == 200
    parts = {p["part"]: p for p in answer["parts"]}
    assert abs(sum(Decimal(p["change_per_1k_usd"]) for p in parts.values()) - _change(answer)) < Decimal("1e-11")
    assert _change(answer) > 0
    # the worker's hours cost the same in both windows: people's rise is volume alone
    assert abs(Decimal(parts["people"]["from_cost_per_1k_usd"])) < Decimal("1e-9")
    assert Decimal(parts["people"]["from_volume_per_1k_usd"]) > 0
    # workload per recommendation rose ~10x, all of it from the move to v2
    versions = {v["model_version"]: v for v in answer["workload_by_version"]["versions"]}
    assert versions["v1"]["share_after"] == 0 and versions["v2"]["share_after"] == 1
    assert versions["v1"]["cpu_ms_per_recommendation_before"] == pytest.approx(500 / 60, rel=1e-3)
    assert versions["v2"]["cpu_ms_per_recommendation_after"] == pytest.approx(1700 / 20, rel=1e-3)
    assert Decimal(versions["v2"]["workload_cost_per_1k_after_usd"]) > 5 * Decimal(
        versions["v1"]["workload_cost_per_1k_before_usd"])
    assert Decimal(answer["workload_by_version"]["from_mix_per_1k_usd"]) == Decimal(parts["workload"]["change_per_1k_usd"])
    text = subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "costs", "--why", "--hours", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert text.returncode == 0 and "By part" in text.stdout and "v2" in text.stdout, text.stderr[-2000:]
    # --end: the same windows ending then (an hour back, the later one is the earlier one above)
    at = datetime.fromtimestamp(now - 3600, timezone.utc).isoformat()
    back = subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "costs", "--why", "--hours", "1",
                           "--end", at, "--json"], env=env, capture_output=True, text=True, timeout=300)
    earlier = json.loads(back.stdout.strip().splitlines()[-1])
    assert earlier["after"]["recommendations"] == 600 and earlier["before"]["recommendations"] == 0
    # --against: the earlier window of the same length ends there (here halfway through v1's ten batches)
    halfway = datetime.fromtimestamp(now - 2 * 3600 + 900, timezone.utc).isoformat()
    against = subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "costs", "--why", "--hours", "1",
                              "--against", halfway, "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert against.returncode == 0, against.stderr[-2000:]
    chosen = json.loads(against.stdout.strip().splitlines()[-1])
    # five of v1's batches lie before it, the sixth in its minute (the rollups' windows are whole minutes)
    assert chosen["before"]["recommendations"] in (300, 360) and chosen["after"]["recommendations"] == 200
    for args, says in ((["--against", halfway], "--against names the window --why compares with: add --why"),
                       (["--why", "--against", "2100-01-01T00:00"], "is not before the window's end"),
                       (["--why", "--against", "last week"], "--against 'last week' is not an ISO 8601 time")):
        refused = subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "costs", *args], env=env,
                                 capture_output=True, text=True, timeout=300)
        assert refused.returncode != 0 and says in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, \
            refused.stderr
    bad = subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "costs", "--end", "yesterday"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--end 'yesterday' is not an ISO 8601 time" in bad.stderr
    page = subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "costs", "--why", "--hours", "1", "--html",
                           str(tmp_path / "why.html")], env=env, capture_output=True, text=True, timeout=300)
    assert page.returncode == 0 and page.stdout == "", page.stderr[-2000:]
    written = (tmp_path / "why.html").read_text()
    assert "By part (per 1k; the changes add up)" in written and "mostly volume" in written
    refused = subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "costs", "--why", "--audit"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "--why compares two windows" in refused.stderr


def test_small_amounts_are_fixed_point_strings_as_in_the_report() -> None:
    """Under a millionth of a dollar they read '1.00000E-7' (str of a Decimal); the report writes
    '0.000000100000'."""
    answer = explain(_report({"v1": 1000}, {"v1": "0.0000001"}, "0", "0", "0"),
                     _report({"v1": 1000}, {"v1": "0.0000002"}, "0", "0", "0"))
    assert answer["fully_loaded_cost_per_1k"] == {"before_usd": "0.000000100000", "after_usd": "0.000000200000",
                                                  "change_usd": "0.000000100000"}
    assert "E" not in json.dumps({k: answer[k] for k in ("fully_loaded_cost_per_1k", "parts", "workload_by_version")})


def test_the_earlier_window_is_named_as_compared() -> None:
    """Adjacent windows read "the 1 h before"; a baseline chosen with --against, its own times
    (the header said "the 1 h before" for any baseline); an empty one suggests another time."""
    before = _report({"v1": 1000}, {"v1": "0.010"}, idle="0.50", people="1.50", ops="0.20")
    after = _report({"v1": 250}, {"v1": "0.0025"}, idle="0.55", people="1.50", ops="0.20")
    later = {**WINDOW, "start": WINDOW["end"], "end": "2026-01-01T02:00:00+00:00"}
    for window, says in ((later, "against the 1 h before"),
                         ({**WINDOW, "start": "2026-01-08T00:00:00+00:00", "end": "2026-01-08T01:00:00+00:00"},
                          "against 2026-01-01 00:00 to 2026-01-01 01:00 UTC")):
        answer = explain(before, {**after, "window": window})
        out = io.StringIO()
        render_why(answer, Console(file=out, width=200))
        assert says in out.getvalue() and says in render_why_html(answer)
    empty = {**before, "totals": {**before["totals"], "recommendations": 0}}
    assert explain(empty, {**after, "window": later})["summary"].endswith("what came just before it")
    assert explain(empty, after)["summary"].endswith("an --against time with traffic before it")
