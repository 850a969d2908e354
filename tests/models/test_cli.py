import json
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

    r = runner.invoke(app, ["export", *common, "--measure-only", "--device", "cpu", "--measure-seconds", "0.05"])
    assert r.exit_code == 0, r.output
    measured = Registry(reg).get(first).manifest["measurements"]["cpu"]
    assert set(measured) == {"fp32", "int8", "fp16"}

    r = runner.invoke(app, ["model", "list", *common, "--json"])
    rows = json.loads(r.stdout)
    assert [row["version"] for row in rows] == [first] and rows[0]["current"] is True
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
