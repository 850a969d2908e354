import json
from decimal import Decimal
from pathlib import Path

import typer
from typer.testing import CliRunner

from reckon.models.cli import register
from reckon.models.core.registry import Registry


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """reckon (test harness)"""

    register(app)
    return app


def test_train_eval_list_promote_export(tmp_path: Path, events_file: Path) -> None:
    app, runner, reg = make_app(), CliRunner(), tmp_path / "reg"
    common = ["--registry", str(reg)]
    r = runner.invoke(app, ["train", str(events_file), "--format", "events", *common, "--epochs", "2",
                            "--hidden", "16", "--max-len", "8", "--query-buckets", "32", "--measure-seconds", "0.05", "--json"])
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)["version"]  # progress and epochs go to stderr
    assert Registry(reg).current_id() is None  # not promoted without --promote

    r = runner.invoke(app, ["model", "promote", first, *common])
    assert r.exit_code == 0 and Registry(reg).current_id() == first

    r = runner.invoke(app, ["eval", str(events_file), *common, "--variant", "int8", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["version"] == first and out["protocol"] == "full" and 0 <= out["hr@10"] <= 1
    assert "does not know" not in r.stderr                      # its own data: no note
    sessions = tmp_path / "sessions.txt"
    sessions.write_text("1 2 3\n2 3 4\n")
    r = runner.invoke(app, ["eval", str(sessions), "--format", "sessions", *common])
    assert r.exit_code == 1 and r.stderr.strip() == (
        f"error: {first} was trained on --format events data, not sessions: give it data of its format, "
        "or --version one trained on sessions data")

    r = runner.invoke(app, ["export", *common, "--measure-only", "--device", "cpu", "--measure-seconds", "0.05"])
    assert r.exit_code == 0, r.output
    measured = Registry(reg).get(first).manifest["measurements"]["cpu"]
    assert set(measured) == {"fp32", "int8", "fp16"}

    r = runner.invoke(app, ["model", "list", *common, "--json"])
    rows = json.loads(r.stdout)
    assert [row["version"] for row in rows] == [first] and rows[0]["current"] is True
    # what the run cost, as a retrain records its own: wall hours x the device's price per hour
    cost = rows[0]["training_cost"]
    assert cost["device"] == "cpu" and cost["cpu_seconds"] > 0 and cost["device_hour_usd"] == "0.062400000000"
    assert Decimal(cost["cost_usd"]) == (Decimal(repr(cost["wall_seconds"])) / 3600 * Decimal("0.0624")).quantize(
        Decimal("1e-12"))
    # the text fits 80 columns with the version id whole (it is what `model promote` takes)
    r = runner.invoke(app, ["model", "list", *common], env={"COLUMNS": "80"})
    lines = r.stdout.splitlines()
    assert r.exit_code == 0 and any(line.split()[:2] == ["*", first] for line in lines if line.strip()), r.stdout
    assert "…" not in r.stdout and max(map(len, lines)) <= 80, r.stdout
    wide = runner.invoke(app, ["model", "list", *common, "--wide"], env={"COLUMNS": "200"})
    assert "fp32,int8,fp16" in wide.stdout and "offline quality (measured on)" in wide.stdout


def test_errors_exit_nonzero_with_a_message(tmp_path: Path) -> None:
    app, runner = make_app(), CliRunner()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    r = runner.invoke(app, ["train", str(bad), "--registry", str(tmp_path / "reg")])
    assert r.exit_code == 1 and "bad.jsonl:1" in r.output
    r = runner.invoke(app, ["model", "promote", "nope", "--registry", str(tmp_path / "reg")])
    assert r.exit_code == 1 and "no model registry at" in r.output and not (tmp_path / "reg").exists()
    (tmp_path / "reg").mkdir()
    r = runner.invoke(app, ["model", "promote", "nope", "--registry", str(tmp_path / "reg")])
    assert r.exit_code == 1 and "not found" in r.output


def test_promote_refuses_a_version_that_fails_its_checksums_or_its_test_load(tmp_path: Path, tiny_version) -> None:
    import shutil

    app, runner = make_app(), CliRunner()
    reg_path = tmp_path / "reg"
    shutil.copytree(tiny_version.path.parent, reg_path)
    reg = Registry(reg_path)
    good = reg.current_id()
    staging = reg.staging_dir()                      # consistent checksums, an ONNX file that is not one
    for f in tiny_version.path.iterdir():
        if f.name != "manifest.json":
            (staging / f.name).write_bytes(b"not onnx" if f.name == "model.int8.onnx" else f.read_bytes())
    reg.add(staging, {**tiny_version.manifest, "version": "v-unloadable"})
    r = runner.invoke(app, ["model", "promote", "v-unloadable", "--registry", str(reg_path)])
    assert r.exit_code == 1 and "could not load" in r.output and reg.current_id() == good

    (reg_path / good / "item_emb.npy").write_bytes(b"tampered")   # the embeddings are checksummed too
    r = runner.invoke(app, ["model", "promote", good, "--registry", str(reg_path)])
    assert r.exit_code == 1 and "item_emb.npy" in r.output and "does not match" in r.output


def test_train_format_picks_its_preset_and_an_unknown_format_is_one_line(tmp_path: Path) -> None:
    from reckon.models.training.presets import configs, preset_for

    model, train = configs(preset_for("sessions"), num_items=10)  # MODEL.md's E4
    assert (model.hidden, model.max_len, model.heads, model.dropout, model.normalize, model.temperature) == \
        (128, 20, 2, 0.2, True, 0.07)
    assert (train.batch_size, train.lr_decay, train.valid_metric) == (256, 0.8, "mrr@20")
    assert model.repeat_bonus and not configs(preset_for("sessions"), 10, {"repeat_bonus": False})[0].repeat_bonus
    model, train = configs(preset_for("sasrec"), num_items=10, overrides={"hidden": 32})  # G2, one flag given
    assert (model.hidden, model.max_len, model.dropout, model.temperature, train.patience) == (32, 50, 0.5, 0.1, 10)
    model, train = configs(preset_for("events"), num_items=10)
    assert (model.hidden, model.normalize, train.epochs, train.batch_size) == (64, False, 20, 128)
    assert not model.repeat_bonus  # validated on sessions only
    assert train.valid_fraction == 0.05 and configs(preset_for("sessions"), 10)[1].valid_fraction == 0.02
    assert (train.ema_epochs, train.recent_share, train.refit) == (0, 0, False)    # on in the sessions preset only
    sessions_train = configs(preset_for("sessions"), 10)[1]
    assert (sessions_train.ema_epochs, sessions_train.recent_share, sessions_train.refit) == (1.0, 0.1, True)
    assert preset_for("jsonl") is preset_for("events")      # the format's old name still works

    r = CliRunner().invoke(make_app(), ["train", str(tmp_path / "x"), "--format", "events2",
                                        "--registry", str(tmp_path / "reg")])
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.strip() == "error: unknown format 'events2'; choose from events, sessions, sasrec"

    r = CliRunner().invoke(make_app(), ["train", str(tmp_path / "x"), "--format", "sessions", "--valid-fraction", "1",
                                        "--registry", str(tmp_path / "reg")])
    assert r.exit_code == 1 and r.stderr.strip() == "error: --valid-fraction must be in [0, 1), got 1.0"

    (tmp_path / "s.txt").write_text("1 2 3\n2 3 4\n")
    r = CliRunner().invoke(make_app(), ["train", str(tmp_path / "s.txt"), "--format", "sessions", "--ema-epochs", "-1",
                                        "--registry", str(tmp_path / "reg")])
    assert r.exit_code == 1 and r.stderr.strip() == "error: ema_epochs must be in [0, 100], got -1.0"


def test_model_commands_use_the_workers_registry(tmp_path: Path, monkeypatch) -> None:
    """Without --registry, the registry a worker with the same settings reads: RECKON_DATA_DIR
    (environment or ./.env) + /models, and RECKON_MODEL_REGISTRY before it."""
    from reckon.streams.core.settings import Settings

    app, runner = make_app(), CliRunner()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECKON_DATA_DIR", raising=False)
    monkeypatch.delenv("RECKON_MODEL_REGISTRY", raising=False)

    def refused_at(env: dict[str, str]) -> str:
        r = runner.invoke(app, ["model", "promote", "v1"], env=env)
        assert r.exit_code == 1 and "no model registry at " in r.output, r.output
        return r.output.split("no model registry at ", 1)[1].split(":", 1)[0]

    assert refused_at({}) == ".reckon/models"
    for env in ({"RECKON_DATA_DIR": str(tmp_path / "env")}, {"RECKON_MODEL_REGISTRY": str(tmp_path / "named")}):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert refused_at(env) == str(Settings().registry_dir), env
        for key in env:
            monkeypatch.delenv(key)
    (tmp_path / ".env").write_text(f"RECKON_DATA_DIR={tmp_path / 'dotenv'}\n")
    assert refused_at({}) == str(tmp_path / "dotenv" / "models") == str(Settings().registry_dir)


# --- money and `model list` as a new user reads them ------------------------------------------

def _money_tokens(text: str) -> list[str]:
    import re

    return re.findall(r"-?\$[\d,]+(?:\.\d+)?", text)


def _three_significant(money: str) -> bool:
    """'$1,234.57' from a dollar up, else three significant digits ('$0.000000846')."""
    digits = money.lstrip("-$").replace(",", "")
    if digits == "0":
        return True
    whole, _, cents = digits.partition(".")
    if whole != "0":
        return len(cents) == 2
    return len(cents.lstrip("0")) == 3


def test_model_usd_is_the_cost_reports_usd() -> None:
    """The model commands write every amount as `reckon costs` does (one formatter, models/core/money.py)."""
    from decimal import Decimal

    from reckon.models.cli import usd as _usd
    from reckon.streams.reports.format import usd

    for value in (None, 0, "0.000000000000", 8.46e-07, 3.6234e-07, "0.000028390501", 0.0012345, 0.5, 1,
                  2.675, Decimal("1234.565"), 98765.4321, -0.00123456, -1234.567, "-0.000000000001"):
        assert _usd(value) == usd(value), value
    assert _usd(-0.00123456) == "-$0.00123" and _usd(-1234.567) == "-$1,234.57"


def test_export_prints_cost_per_1k_scores_at_three_significant_digits(tmp_path: Path, tiny_version) -> None:
    import re
    import shutil

    reg = tmp_path / "reg"
    shutil.copytree(tiny_version.path.parent, reg)
    r = CliRunner().invoke(make_app(), ["export", "--registry", str(reg), "--measure-only", "--device", "cpu",
                                        "--measure-seconds", "0.05"], env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.output
    assert "$ / 1k scores" in r.stdout and "device s / 1k scores" in r.stdout, r.stdout   # says 1k of what
    assert not re.search(r"\de[-+]\d", r.stdout), r.stdout                                   # no 8.46e-07
    money = _money_tokens(r.stdout)
    assert len(money) == 6 and all(map(_three_significant, money)), (money, r.stdout)   # 3 in the table, 3 measured
    measured = next(line for line in r.stdout.splitlines() if line.startswith("measured on cpu: "))  # one line
    for variant in ("fp32", "int8", "fp16"):
        assert re.search(rf"\b{variant}: \d+\.\d{{4}} device s and \$0\.0*[1-9]\d\d per 1k scores\b", measured), \
            r.stdout


def _list_app(ids: list[str]) -> typer.Typer:
    """The test app with an online-quality reader that knows every one of ``ids``."""
    def online(hours: float) -> tuple[dict, None]:
        return {v: {"attributed_ctr": 0.1234, "attributed_ctr_ci95": [0.1011, 0.1489], "recommendations": 123456}
                for v in ids}, None

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app, online=online)
    return app


def _many_versions(tmp_path: Path, tiny_version, growth: float, count: int = 8) -> tuple[Path, list[str]]:
    """tiny_version and copies of it registered as `count` versions with retraining records; the
    copies' int8 scoring cost is $0.000000846 x growth^i and their training cost from $0.0000284 up."""
    import shutil

    path = tmp_path / "reg"
    shutil.copytree(tiny_version.path.parent, path)
    reg = Registry(path)
    ids = [tiny_version.version]
    for i in range(1, count):
        staging = reg.staging_dir()
        for f in tiny_version.path.iterdir():
            if f.name != "manifest.json":
                shutil.copy(f, staging / f.name)
        m = tiny_version.manifest
        version = f"2031010{i}-12000{i}-{i:08x}"                      # a real id's shape: date-time-hash
        reg.add(staging, {
            **m, "version": version, "created": f"2031-01-0{i}T12:00:0{i}+00:00",
            "cost": {**m["cost"], "int8": {**m["cost"]["int8"], "cost_per_1k_scores_usd": 8.4567e-07 * growth ** i}},
            "retraining": {"training_cost": {"cost_usd": f"{0.000028390501 * growth ** (i - 1):.12f}",
                                             "cpu_seconds": 12.3},
                           "offline_quality": {"examples": 123456, "candidate": {"hr@10": 0.5, "ndcg@10": 0.3}},
                           "promotion": {"promoted": i % 2 == 1, "reason": "r"}}})
        ids.append(version)
    return path, ids


def test_model_list_keeps_the_marker_and_whole_ids_with_many_versions_and_long_prices(
        tmp_path: Path, tiny_version) -> None:
    # sub-cent prices at their longest ($0.000000846): every column fits 80; growing ones up to
    # $84,567,000: what does not fit goes (and a line says so), never the marker or an id
    for n, (growth, columns, everything) in enumerate(((1, 80, True), (100, 80, False), (100, 120, True))):
        path, ids = _many_versions(tmp_path / str(n), tiny_version, growth)
        app = _list_app(ids)
        for current in (ids[3], ids[-1]):
            Registry(path).promote(current)
            r = CliRunner().invoke(app, ["model", "list", "--registry", str(path)], env={"COLUMNS": str(columns)})
            lines = r.stdout.splitlines()
            assert r.exit_code == 0 and "…" not in r.stdout and max(map(len, lines)) <= columns, r.stdout
            rows = [line.split() for line in lines if any(v in line for v in ids)]
            assert [row[:2] if row[0] == "*" else row[:1] for row in rows] == \
                [["*", v] if v == current else [v] for v in ids], r.stdout
            assert all(h in r.stdout for h in ("hr@10", "training", "CTR 24 h")), r.stdout
            assert "$0.0000284" in r.stdout and "12.34 %" in " ".join(rows[-1]), r.stdout
            assert all(map(_three_significant, _money_tokens(r.stdout))), r.stdout
            assert ("retrain" in r.stdout and "promoted" in r.stdout) == everything, r.stdout
            assert ("not shown at 80 columns: retrain (--wide: every column)" in r.stdout) != everything, r.stdout


def test_model_list_wide_prints_every_cell_whole_at_any_width(tmp_path: Path, tiny_version) -> None:
    path, ids = _many_versions(tmp_path, tiny_version, 100)
    app = _list_app(ids)
    for columns in ("80", "200"):
        r = CliRunner().invoke(app, ["model", "list", "--registry", str(path), "--wide"], env={"COLUMNS": columns})
        assert r.exit_code == 0 and "…" not in r.stdout, r.stdout
        for v in ids:
            manifest = Registry(path).get(v).manifest
            row = next(line for line in r.stdout.splitlines() if v in line)        # one line per version
            assert manifest["created"] in row and "fp32,int8,fp16" in row, row
            assert "12.34 % [10.11, 14.89] of 123456" in row, row
            if v != ids[0]:
                assert "hr@10 0.500, ndcg@10 0.300 (latest slice, 123456 examples)" in row, row
                assert ("promoted" if ids.index(v) % 2 else "refused") in row, row
        assert "$84,567,000.00" in r.stdout and "$0.0000284 (12 CPU s)" in r.stdout, r.stdout
        assert "offline quality (measured on)" in r.stdout and "int8 $/1k scores" in r.stdout, r.stdout
        assert all(map(_three_significant, _money_tokens(r.stdout))), r.stdout


def test_retrain_prints_its_training_cost_at_three_significant_digits() -> None:
    import io

    from rich.console import Console

    from reckon.streams.cli.retrain import _print

    out = io.StringIO()
    _print({"version": "v2", "parent": "v1", "new_items": 3, "metric": "hr@10", "candidate_quality": 0.5,
            "current_quality": 0.4, "examples": 120, "promoted": True, "reason": "better",
            "training_cost": {"cost_usd": "0.000028390501", "cpu_seconds": 1.5, "wall_seconds": 2.25,
                              "device": "cpu", "price_sheet_version": "2025-01"}},
           Console(file=out, width=200))
    assert "training cost $0.0000284 (1.5 CPU s, 2.2 s wall on cpu, price sheet 2025-01)" in out.getvalue(), \
        out.getvalue()


def test_a_bare_export_registers_nothing(tmp_path: Path, tiny_version) -> None:
    """`reckon export` with no source re-exported the promoted version as a new one on every call."""
    import shutil

    reg = tmp_path / "reg"
    shutil.copytree(tiny_version.path.parent, reg)
    before = sorted(p.name for p in reg.iterdir())
    r = CliRunner().invoke(make_app(), ["export", "--registry", str(reg)])
    assert r.exit_code == 1 and "give what to export: --version V" in r.stderr, r.output
    assert sorted(p.name for p in reg.iterdir()) == before


def test_eval_says_when_most_clicks_are_on_items_the_version_does_not_know(tmp_path: Path, tiny_version) -> None:
    """The promoted version was the demo's: eval on other data printed hr@10 0.07 without a word."""
    import shutil
    import time

    reg = tmp_path / "reg"
    shutil.copytree(tiny_version.path.parent, reg)
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"event_id": f"e{u}-{n}", "user_id": f"u{u}", "item_id": f"new-{u}-{n}",
                                         "action": "view", "ts": time.time() + n}) + "\n"
                             for u in range(5) for n in range(4)))
    r = CliRunner().invoke(make_app(), ["eval", str(other), "--registry", str(reg), "--version", tiny_version.version])
    assert "note: 20 of 20 clicks in" in r.stderr and "does not know" in r.stderr, r.output


def test_model_list_says_which_hr_was_ranked_against_100_sampled_items(tmp_path: Path, tiny_version) -> None:
    # 0.265 over every item and 0.560 over 100 sampled ones stood side by side, unmarked.
    import shutil

    path = tmp_path / "reg"
    shutil.copytree(tiny_version.path.parent, path)
    reg = Registry(path)
    staging = reg.staging_dir()
    for f in tiny_version.path.iterdir():
        if f.name != "manifest.json":
            shutil.copy(f, staging / f.name)
    sampled = "20310101-120001-00000001"
    reg.add(staging, {**tiny_version.manifest, "version": sampled,
                      "metrics": {"protocol": "sampled100", "test": {"hr@10": 0.56, "ndcg@10": 0.4}}})
    app = _list_app([tiny_version.version, sampled])
    r = CliRunner().invoke(app, ["model", "list", "--registry", str(path)], env={"COLUMNS": "80"})
    row = next(line for line in r.stdout.splitlines() if sampled in line)
    assert "0.560 (100)" in row and "hr@10 (100): ranked against 100 sampled items" in r.stdout, r.stdout
    wide = CliRunner().invoke(app, ["model", "list", "--registry", str(path), "--wide"], env={"COLUMNS": "200"})
    assert "(test, 100 sampled items)" in next(line for line in wide.stdout.splitlines() if sampled in line)


def test_sasrec_data_with_a_small_catalog_is_ranked_in_full_not_refused_after_training(tmp_path: Path) -> None:
    """40 items cannot give an example 100 negatives: the first validation failed the run."""
    import random

    rng = random.Random(2)
    data = tmp_path / "small.txt"
    data.write_text("".join(f"{u} {rng.randint(1, 40)}\n" for u in range(1, 61) for _ in range(rng.randint(3, 12))))
    reg = tmp_path / "reg"
    r = CliRunner().invoke(make_app(), ["train", str(data), "--format", "sasrec", "--epochs", "1", "--hidden", "16",
                                        "--registry", str(reg), "--json"])
    assert r.exit_code == 0, r.output
    manifest = json.loads(r.stdout.strip().splitlines()[-1])
    assert manifest["metrics"]["protocol"] == "full" and manifest["training"]["valid_protocol"] == "full"
    assert "40 items leave some example fewer than 100 to sample as negatives" in r.stderr
    r = CliRunner().invoke(make_app(), ["eval", str(data), "--format", "sasrec", "--registry", str(reg),
                                        "--version", manifest["version"], "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["protocol"] == "full", r.output
