"""Retraining from the clicks stored in ClickHouse (the real chdb store): a drifted stream's
candidate is better and promoted; a candidate trained on noise is worse and refused."""

from __future__ import annotations

import json
import random
import shutil
import time
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reckon.models.core.registry import Registry
from reckon.streams.cli.main import app
from reckon.streams.core.errors import ReckonError, RetrainError
from reckon.streams.costs.pricing import PriceSheet
from reckon.streams.retrain.events import read_clicks, read_events, window_query
from reckon.streams.retrain.policy import RetrainConfig, check_overrides, decide
from reckon.streams.retrain.run import retrain
from reckon.streams.sink.rows import Rows, rows_from_message, write
from reckon.streams.traffic.generator import Drift, TrafficGenerator

SHEET = PriceSheet.load(env={})
FAST = RetrainConfig(seconds=4, epochs=6, min_examples=100, measure_seconds=0.05, threads=1)


def _window(day: int, tag: str) -> tuple[datetime, datetime]:
    """An hour of event time of a test's own: `day` days back (one day per test; other tests
    write near now), somewhere in its first 12 hours."""
    start = datetime.now(timezone.utc) - timedelta(days=day, minutes=zlib.crc32(tag.encode()) % 660)
    return start.replace(microsecond=0), start.replace(microsecond=0) + timedelta(hours=1)


def _store(clickhouse, events: list[dict]) -> None:
    rows = Rows()
    for event in events:
        rows.add("clicks_log", rows_from_message("clicks_log", json.dumps(event).encode()))
    write(clickhouse, rows)


def _registry(registry_dir: Path, tmp_path: Path) -> Registry:
    shutil.copytree(registry_dir, tmp_path / "registry")
    return Registry(tmp_path / "registry")


def test_window_sql_is_exact() -> None:
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert window_query(t, t, 10) == (
        "SELECT tenant, user_id, item_id, toFloat64(ts) AS ts, event_id FROM clicks_log FINAL "
        "WHERE ts >= {start:DateTime64(3, 'UTC')} AND ts < {end:DateTime64(3, 'UTC')} "
        "ORDER BY ts DESC, event_id DESC LIMIT {limit:UInt64}", {"start": t, "end": t, "limit": 10})


def test_promotion_rule() -> None:
    config = RetrainConfig(margin=0.02, min_examples=50)
    assert decide({"hr@10": 0.30}, {"hr@10": 0.25}, config, 60).promote
    refused = decide({"hr@10": 0.26}, {"hr@10": 0.25}, config, 60)
    assert not refused.promote and "not better by the margin 0.02" in refused.reason
    few = decide({"hr@10": 0.9}, {"hr@10": 0.1}, config, 10)
    assert not few.promote and "fewer than the 50" in few.reason


def test_overrides_are_numbers_within_their_settings_bounds() -> None:
    assert check_overrides({"margin": "0.05", "min_examples": "50", "window_hours": 2, "seconds": None}) == {
        "margin": 0.05, "min_examples": 50, "window_hours": 2.0}
    for given, says in [({"epochs": "9"}, "unknown retrain options ['epochs']"),
                        ({"margin": "lots"}, "retrain option margin: Input should be a valid number"),
                        ({"margin": "1.5"}, "retrain option margin: Input should be less than or equal to 1"),
                        ({"min_examples": "2.5"}, "retrain option min_examples: Input should be a valid integer"),
                        ({"window_hours": "1e308"}, "retrain option window_hours: Input should be less than or equal"),
                        ({"window_hours": "-1"}, "retrain option window_hours: Input should be greater than 0"),
                        ({"seconds": "inf"}, "retrain option seconds must be a finite number, got 'inf'"),
                        ({"seconds": "nan"}, "retrain option seconds"),
                        ({"eval_fraction": "0.5"}, "retrain option eval_fraction: Input should be less than 0.5")]:
        with pytest.raises(ReckonError) as caught:
            check_overrides(given)
        assert str(caught.value).startswith(says) and "\n" not in str(caught.value), (given, str(caught.value))


def test_cli_refuses_an_out_of_bounds_option_in_one_line(tmp_path) -> None:
    out = CliRunner().invoke(app, ["retrain", "--window-hours", "100000", "--json"])
    assert out.exit_code == 2          # as the same refusal without --json
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "error": "retrain option window_hours: Input should be less than or equal to 2160, got '100000.0'"}


@pytest.mark.integration
def test_retrain_from_stored_clicks_promotes_a_better_candidate(clickhouse, registry_dir, tmp_path) -> None:
    tag = uuid.uuid4().hex[:8]
    start, end = _window(2, tag)
    gen = TrafficGenerator(seed=41, drift=Drift(at=2500), tenants=(f"t-{tag}",), start_ts=start.timestamp() + 1)
    events = [e for e, _ in zip(gen.sessions(), range(6000)) if "item_id" in e]
    _store(clickhouse, events + events[:50])                    # a redelivered tail is stored once
    registry = _registry(registry_dir, tmp_path)
    parent = registry.current_id()

    clicks = read_clicks(clickhouse, start, end, 1_000_000)
    assert len(clicks) == len(events) and clicks[0][0] == (f"t-{tag}", events[0]["user_id"])
    result = retrain(clicks, registry, FAST, SHEET, {"read": "test window"})

    assert result["promoted"], result
    assert registry.current_id() == result["version"] != parent
    assert result["candidate_quality"] > result["current_quality"] and result["new_items"] > 0
    mv = registry.get(result["version"])
    section = mv.manifest["retraining"]
    assert section["parent"] == parent and section["promotion"]["promoted"]
    assert section["source"]["read"] == "test window"
    assert section["offline_quality"]["candidate"]["hr@10"] == result["candidate_quality"]
    cost = section["training_cost"]
    assert cost["cpu_seconds"] > 0 and cost["price_sheet_version"] == SHEET.version and cost["device"] == "cpu"
    vcpu = SHEET.at(datetime.now(timezone.utc)).unit["vcpu_hour"]
    assert Decimal(cost["cost_usd"]) == (Decimal(repr(cost["cpu_seconds"])) * vcpu / 3600).quantize(Decimal("1e-12"))
    assert set(mv.variants) == {"fp32", "int8", "fp16"} and any(i.startswith("i2") and int(i[1:]) >= 2000
                                                                 for i in mv.item_ids)


@pytest.mark.integration
def test_a_worse_candidate_is_registered_but_not_promoted(clickhouse, registry_dir, tmp_path) -> None:
    tag = uuid.uuid4().hex[:8]
    start, end = _window(4, tag)
    registry = _registry(registry_dir, tmp_path)
    parent = registry.current()
    rng = random.Random(7)
    # training and validation slices: noise (random items); the latest slice: the traffic the
    # promoted version learned from. Fine-tuning on noise can only unlearn it.
    noise = [{"event_id": f"{tag}-n{i}", "user_id": f"noise-{rng.randrange(300)}",
              "item_id": rng.choice(parent.item_ids), "action": "view", "ts": start.timestamp() + i * 0.2,
              "tenant": tag} for i in range(4000)]
    gen = TrafficGenerator(seed=5, tenants=(tag,), start_ts=start.timestamp() + 900)
    real = [{**e, "event_id": f"{tag}-{e['event_id']}"} for e, _ in zip(gen.sessions(), range(1400)) if "item_id" in e]
    _store(clickhouse, noise + real)

    result = retrain(read_clicks(clickhouse, start, end, 1_000_000), registry,
                     RetrainConfig(**{**FAST.__dict__, "lr": 1e-2, "margin": 0.0}), SHEET, {"read": "test window"})

    assert not result["promoted"] and result["candidate_quality"] < result["current_quality"], result
    assert "is not better by the margin" in result["reason"]
    assert registry.current_id() == parent.version                            # nothing changed for serving
    section = registry.get(result["version"]).manifest["retraining"]          # but it is kept, with why
    assert section["promotion"] == {**section["promotion"], "promoted": False, "reason": result["reason"]}


def test_events_file_is_checked_by_the_contract(tmp_path) -> None:
    now = time.time()
    good = {"event_id": "e1", "user_id": "u", "item_id": "i1", "action": "view", "ts": now}
    lines = [good, good, {**good, "event_id": "e2", "action": "steal"}, {**good, "event_id": "e3", "ts": 1.0},
             {"event_id": "s1", "user_id": "u", "query": "red", "ts": now}]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n" + "[" * 5000 + "]" * 5000 + "\n")
    clicks, skipped = read_events(path, now)
    assert clicks == [(("default", "u"), "i1", now)]
    assert skipped == {"duplicate": 1, "unknown_action": 1, "ts_out_of_range": 1, "search": 1, "not_json": 1,
                       "too_deep": 1}
    (tmp_path / "bad.jsonl").write_text("not json\n")
    with pytest.raises(RetrainError, match="no valid click to learn from \\(1 not_json; the first not_json: "):
        read_events(tmp_path / "bad.jsonl", now)
    # a file whose clicks are all too old says what the window is
    (tmp_path / "old.jsonl").write_text("\n".join(json.dumps({**good, "event_id": f"o{n}", "ts": 1.0}) for n in range(3)))
    with pytest.raises(RetrainError, match=r"\(3 ts_out_of_range; the first ts_out_of_range: ts 1.0 not within "
                                           r"\[-604800s, \+300s\] of now\)$"):
        read_events(tmp_path / "old.jsonl", now)


def test_cli_says_in_one_line_why_it_cannot_retrain(tmp_path, monkeypatch) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"event_id": "e1", "user_id": "u", "item_id": "i1", "action": "view",
                                "ts": time.time()}) + "\n")
    monkeypatch.setenv("RECKON_MODEL_REGISTRY", str(tmp_path / "empty"))
    out = CliRunner().invoke(app, ["retrain", "--events", str(path), "--json"])
    assert out.exit_code == 2
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "error": f"no promoted version in {tmp_path / 'empty'} to start from: train one first"}


def test_without_pytorch_a_retrain_says_so_in_one_line(registry_dir, tmp_path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)          # as in an install without the training extra
    with pytest.raises(RetrainError, match=r"^retraining needs torch, from the 'train' extra: "
                                           r"pip install 'reckon\[train\]'$"):
        retrain([], _registry(registry_dir, tmp_path), FAST, SHEET, {})
