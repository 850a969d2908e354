"""`--json` prints one compact JSON document and nothing else on stdout; progress, per-epoch
lines and logs go to stderr. Each command runs as its own process, as a user (or a script
piping it into `jq`) runs it."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest


def _write_sessions(directory: Path, sessions: int = 300, items: int = 40) -> Path:
    """Sessions that walk forward through the items (learnable) with an SR-GNN test file beside them."""
    rng = random.Random(3)
    directory.mkdir()
    walks = []
    for _ in range(sessions):
        start = rng.randrange(items)
        walks.append([(start + i) % items + 1 for i in range(rng.randint(3, 8))])
    (directory / "train_sessions.txt").write_text("".join(" ".join(map(str, w)) + "\n" for w in walks[:250]))
    (directory / "test_samples.tsv").write_text(
        "".join(" ".join(map(str, w[:-1])) + "\t" + str(w[-1]) + "\n" for w in walks[250:]))
    return directory


def _write_clicks(path: Path, users: int = 150, items: int = 40) -> Path:
    """An hour of clicks (each user walks forward through the items), ending now."""
    rng, now, lines = random.Random(5), time.time(), []
    for u in range(users):
        start = rng.randrange(items)
        for i in range(8):
            lines.append(json.dumps({"event_id": f"e{u}-{i}", "user_id": f"u{u}", "item_id": f"i{(start + i) % items}",
                                     "action": "view", "ts": now - 3600 + u * 20 + i}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _run_json(env: dict[str, str], *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", *args], capture_output=True, text=True,
                         env=env, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"{args[0]}: stdout has {len(lines)} lines: {out.stdout[:1000]}"
    assert lines[0] == out.stdout.strip().splitlines()[-1]
    return json.loads(lines[0])


@pytest.mark.integration
def test_every_quick_json_command_prints_one_json_line(tmp_path: Path) -> None:
    data = _write_sessions(tmp_path / "sessions")
    env = {**os.environ, "RECKON_DATA_DIR": str(tmp_path / "data"), "RECKON_MODEL_REGISTRY": str(tmp_path / "reg"),
           "RECKON_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'clickhouse'}", "OMP_NUM_THREADS": "1"}

    # The sessions preset (MODEL.md's E4) with two flags given: the manifest says which.
    manifest = _run_json(env, "train", str(data), "--format", "sessions", "--epochs", "1", "--dropout", "0.1",
                         "--time-budget", "20", "--measure-seconds", "0.05", "--promote", "--json")
    training, config = manifest["training"], manifest["config"]
    assert training["preset"] == "sessions" and training["overrides"] == {"epochs": 1, "dropout": 0.1}
    assert (config["hidden"], config["max_len"], config["heads"], config["normalize"], config["temperature"]) == \
        (128, 20, 2, True, 0.07)
    assert config["dropout"] == 0.1 and training["epochs"] == 1 and config["repeat_bonus"] is True
    # The preset holds out the last 2 % of the 250 training sessions to choose the epoch.
    assert training["valid_fraction"] == 0.02 and manifest["data"]["valid_sessions"] == 5
    # It keeps a moving average of the weights and trains the newest 10 % twice; each epoch's
    # line shows the average's validation and the raw weights' beside it.
    assert (training["ema_epochs"], training["recent_share"]) == (1.0, 0.1)
    assert {"valid_mrr@20", "raw_valid_mrr@20"} <= training["history"][0].keys()
    # Then one pass from the chosen epoch over the 5 held out and the newest 25 of all 250.
    assert training["refit"] is True and training["refit_epoch"]["from_epoch"] == training["best_epoch"] == 1
    assert training["refit_epoch"]["sequences"] == 30 and training["refit_epoch"]["steps"] >= 1
    assert (training["batch_size"], training["lr_decay"], training["valid_metric"]) == (256, 0.8, "mrr@20")

    metrics = _run_json(env, "eval", str(data), "--format", "sessions", "--limit", "30", "--json")
    # The refit trained on the held-out sessions: scoring the version on them is refused in one line.
    refused = subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "eval", str(data), "--format",
                              "sessions", "--split", "valid"], env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and refused.stderr.strip().splitlines()[-1].startswith("error: ") and \
        "(refit)" in refused.stderr
    assert metrics["version"] == manifest["version"] and 0 <= metrics["hr@20"] <= 1
    assert [row["version"] for row in _run_json(env, "model", "list", "--json")] == [manifest["version"]]
    timed = _run_json(env, "bench", "scoring", "--registry", str(tmp_path / "reg"), "--seconds", "0.05",
                      "--rounds", "1", "--json")
    assert {row["variant"] for row in timed["rows"]} >= {"fp32"} and timed["errors"] == []
    assert all(row["version"] == manifest["version"] and row["scores_per_second"] > 0 for row in timed["rows"])

    events = _write_clicks(tmp_path / "events.jsonl")
    retrained = _run_json(env, "retrain", "--events", str(events), "--seconds", "2", "--json")
    assert retrained["parent"] == manifest["version"]

    subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "migrate"], env=env, check=True,
                   capture_output=True)
    assert "totals" in _run_json(env, "costs", "--json")
    # RECKON_ATTRIBUTION_WINDOW_S is the report's window unless the command asks for another
    windowed = {**env, "RECKON_ATTRIBUTION_WINDOW_S": "600"}
    assert _run_json(windowed, "costs", "--json")["window"]["attribution_window_s"] == 600
    assert _run_json(windowed, "costs", "--json", "--attribution-window-s", "60")["window"]["attribution_window_s"] == 60
