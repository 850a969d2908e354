"""Every input a user can get wrong in `reckon train | eval | export | model` and the model
benchmarks is refused in one line, with a non-zero exit, before any work: no traceback, and
no nonsense accepted (a version trained on zero batches, an empty table for a registry that
is not there)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from reckon.models.core.errors import DataFormatError, RegistryError
from reckon.models.core.registry import Registry
from reckon.models.training.data import load_events, read_events
from reckon.streams.cli.main import app
from reckon.streams.core.errors import ReckonError


def invoke(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


def said(result) -> str:
    """What a command printed, its lines (and a usage error's box) joined into one."""
    return " ".join(result.output.replace("│", " ").split())


@pytest.fixture
def deep_file(tmp_path: Path) -> Path:
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 5000 + "]" * 5000 + "\n")
    return path


@pytest.mark.parametrize(("flag", "value", "problem"), [
    ("--epochs", "0", "greater than or equal to 1"),
    ("--epochs", "-3", "greater than or equal to 1"),
    ("--hidden", "0", "greater than or equal to 1"),
    ("--batch-size", "-5", "greater than or equal to 1"),
    ("--batch-size", "0", "greater than or equal to 1"),
    ("--max-len", "0", "greater than or equal to 1"),
    ("--heads", "0", "greater than or equal to 1"),
    ("--blocks", "-1", "greater than or equal to 0"),
    ("--patience", "0", "greater than or equal to 1"),
    ("--query-buckets", "-3", "greater than or equal to 0"),
    ("--seed", "-1", "greater than or equal to 0"),
    ("--time-budget", "-1", "-1.0 is not a finite number > 0"),
    ("--time-budget", "0", "0.0 is not a finite number > 0"),
    ("--time-budget", "nan", "nan is not a finite number > 0"),
    ("--temperature", "0", "0.0 is not a finite number > 0"),
    ("--lr", "nan", "nan is not a finite number > 0"),
    ("--lr", "0", "0.0 is not a finite number > 0"),
    ("--lr-decay", "0", "0.0 is not in (0, 1]"),
    ("--dropout", "nan", "nan is not in [0, 1)"),
    ("--dropout", "1", "1.0 is not in [0, 1)"),
    ("--measure-seconds", "inf", "inf is not a finite number > 0"),
    ("--device-hour-usd", "-1", "-1.0 is not a finite number >= 0"),
])
def test_train_refuses_an_out_of_range_number(tmp_path: Path, flag: str, value: str, problem: str) -> None:
    r = invoke("train", tmp_path / "data.jsonl", "--registry", tmp_path / "reg", flag, value)
    assert r.exit_code == 2 and f"Invalid value for '{flag}': " in said(r) and problem in said(r), r.output
    assert not (tmp_path / "reg").exists()


def test_train_refuses_a_device_torch_cannot_train_on(tmp_path: Path, events_file: Path) -> None:
    r = invoke("train", events_file, "--registry", tmp_path / "reg", "--device", "tpu")
    assert r.exit_code == 1 and \
        r.stderr.strip() == "error: --device 'tpu' is not a torch device: use cpu or cuda (cuda:N)"
    if not torch.backends.cuda.is_built():
        r = invoke("train", events_file, "--registry", tmp_path / "reg", "--device", "cuda")
        assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1
        assert "error: --device cuda: CUDA is not available in this torch build" in r.stderr


def test_train_checks_the_registry_before_training(tmp_path: Path, events_file: Path) -> None:
    a_file = tmp_path / "registry.txt"
    a_file.write_text("not a directory\n")
    for registry, problem in ((a_file, "it is a file"), (a_file / "sub", f"{a_file} is a file")):
        r = invoke("train", events_file, "--registry", registry, "--epochs", "1")
        assert r.exit_code == 1 and "epoch 1" not in r.output, r.output       # refused before the first epoch
        assert r.stderr.strip() == f"error: {registry} cannot be a model registry: {problem}, not a directory"


def test_train_checks_where_it_saves_its_resume_state_before_training(tmp_path: Path, events_file: Path) -> None:
    resume = tmp_path / "no-such-dir" / "state.pt"
    r = invoke("train", events_file, "--registry", tmp_path / "reg", "--epochs", "1", "--resume", resume)
    assert r.exit_code == 1 and "epoch 1" not in r.output, r.output       # was a torch error after an epoch
    assert r.stderr.strip() == f"error: --resume {resume}: {resume.parent} is not a writable directory"


def test_train_on_a_file_without_usable_events_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = invoke("train", empty, "--registry", tmp_path / "reg", "--epochs", "1")
    assert r.exit_code == 1 and r.stderr.strip().startswith(f"error: {empty}: no usable events: it holds no clicks")
    one_click = tmp_path / "one.jsonl"
    one_click.write_text('{"event_id": "e1", "user_id": "u", "item_id": "i", "action": "view", "ts": 1}\n')
    r = invoke("train", one_click, "--registry", tmp_path / "reg", "--epochs", "1")
    assert r.exit_code == 1 and "no user or session has two or more clicks" in r.stderr
    assert not (tmp_path / "reg").exists()


def test_a_deeply_nested_line_is_a_malformed_line(tmp_path: Path, deep_file: Path, tiny_version) -> None:
    r = invoke("train", deep_file, "--registry", tmp_path / "reg", "--epochs", "1")
    assert r.exit_code == 1 and r.stderr.strip() == f"error: {deep_file}:1: invalid JSON: nested too deeply"
    r = invoke("eval", deep_file, "--registry", tiny_version.path.parent)
    assert r.exit_code == 1 and r.stderr.strip() == f"error: {deep_file}:1: invalid JSON: nested too deeply"
    with pytest.raises(DataFormatError, match="nested too deeply"):
        list(read_events(deep_file))


def test_an_event_time_that_is_not_a_finite_number_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "nan.jsonl"
    path.write_text('{"event_id": "e1", "user_id": "u", "item_id": "i", "action": "view", "ts": NaN}\n'
                    '{"event_id": "e2", "user_id": "u", "item_id": "i", "action": "view", "ts": 1e999}\n')
    with pytest.raises(DataFormatError, match=r"nan.jsonl:1: 'ts' must be unix seconds"):
        load_events(path)
    assert load_events(path, strict=False).description["skipped"] == 2


@pytest.mark.parametrize("command", [
    ["model", "list"], ["model", "list", "--json"], ["model", "promote", "v1"], ["eval", "{data}"],
    ["export", "--measure-only"], ["export"],
])
def test_read_only_commands_need_an_existing_registry_and_create_none(tmp_path: Path, command: list[str]) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text("")
    args = [a.replace("{data}", str(data)) for a in command]
    missing = tmp_path / "nowhere"
    r = invoke(*args, "--registry", missing)
    assert r.exit_code == 1 and r.stdout == "", r.output
    assert r.stderr.strip() == f"error: no model registry at {missing}: the directory does not exist"
    assert not missing.exists()
    a_file = tmp_path / "passwd"
    a_file.write_text("root:x:0:0\n")
    r = invoke(*args, "--registry", a_file)
    assert r.exit_code == 1 and r.stderr.strip() == f"error: {a_file} is not a directory, so not a model registry"


def test_export_refuses_a_file_that_is_not_a_checkpoint(tmp_path: Path, events_file: Path) -> None:
    reg = tmp_path / "reg"
    r = invoke("export", "--checkpoint", events_file, "--data", events_file, "--registry", reg)
    assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith(f"error: {events_file} is not a Reckon checkpoint: not a PyTorch file")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    r = invoke("export", "--checkpoint", other, "--data", events_file, "--registry", reg)
    assert r.exit_code == 1 and r.stderr.strip() == \
        f"error: {other} is not a Reckon checkpoint: it holds no model config and weights"
    r = invoke("export", "--checkpoint", tmp_path / "none.pt", "--data", events_file, "--registry", reg)
    assert r.exit_code == 1 and r.stderr.strip() == f"error: {tmp_path / 'none.pt'}: checkpoint not found"
    assert not reg.exists()


def test_eval_with_nothing_to_evaluate_or_a_bad_limit(tmp_path: Path, tiny_version) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    registry = tiny_version.path.parent
    r = invoke("eval", empty, "--registry", registry)
    assert r.exit_code == 1 and r.stdout == "" and r.stderr.startswith(
        f"error: nothing to evaluate: {empty} gives no test examples")
    for limit in ("-1", "0"):
        r = invoke("eval", empty, "--registry", registry, "--limit", limit)
        assert r.exit_code == 2 and "Invalid value for '--limit'" in said(r)


def test_export_measure_seconds_and_list_hours_are_bounded(tmp_path: Path, tiny_version) -> None:
    registry = tiny_version.path.parent
    before = tiny_version.manifest.get("measurements")
    for value in ("-1", "0", "nan"):
        r = invoke("export", "--measure-only", "--registry", registry, "--measure-seconds", value)
        assert r.exit_code == 2 and "Invalid value for '--measure-seconds'" in said(r)
    assert Registry(registry).get(tiny_version.version).manifest.get("measurements") == before
    r = invoke("model", "list", "--registry", registry, "--hours", "nan")
    assert r.exit_code == 2 and "nan is not a finite number >= 0.001" in said(r)


def test_list_hours_beyond_the_report_window_is_a_usage_error(tiny_version) -> None:
    r = invoke("model", "list", "--registry", tiny_version.path.parent, "--hours", "10000")
    assert r.exit_code == 2 and "Invalid value for '--hours': hours must be in (0, 9600]" in said(r), r.output


def test_a_current_pointer_that_is_not_utf8_is_one_line(tmp_path: Path, tiny_version) -> None:
    import shutil

    registry = tmp_path / "reg"
    shutil.copytree(tiny_version.path.parent, registry)
    (registry / "CURRENT").write_bytes(b"\xff\xfe\n")
    r = invoke("model", "list", "--registry", registry)
    assert r.exit_code == 1 and f"{registry / 'CURRENT'}: not UTF-8 text" in said(r), r.output
    assert not isinstance(r.exception, UnicodeDecodeError)


def test_an_error_naming_a_path_with_brackets_is_one_line(tmp_path: Path) -> None:
    """The path went into rich markup: `[/]` in it was a MarkupError traceback."""
    r = invoke("eval", tmp_path / "[/]data", "--registry", tmp_path / "[/]reg")
    assert r.exit_code == 1 and f"{tmp_path / '[/]reg'}" in said(r), r.output
    assert isinstance(r.exception, SystemExit), r.exception


@pytest.mark.parametrize(("args", "problem"), [
    (["bench", "stream", "--min-seconds", "inf"], "Invalid value for '--min-seconds'"),
    (["bench", "stream", "--latency-seconds", "inf"], "Invalid value for '--latency-seconds'"),
    (["bench", "api", "--seconds", "inf"], "Invalid value for '--seconds'"),
    (["bench", "api", "--rate", "nan"], "Invalid value for '--rate'"),
])
def test_bench_durations_and_rates_are_bounded(args: list[str], problem: str) -> None:
    """`--min-seconds inf` started a benchmark that could never end (an OverflowError later on)."""
    from reckon.streams.cli import main

    out = subprocess.run([sys.executable, "-m", main.__name__, *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and problem in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_model_list_shows_the_readable_versions_beside_a_corrupt_manifest(tmp_path: Path, tiny_version) -> None:
    import shutil

    registry = tmp_path / "reg"
    shutil.copytree(tiny_version.path.parent, registry)
    shutil.copytree(registry / tiny_version.version, registry / "broken")
    (registry / "broken" / "manifest.json").write_text("{")
    r = invoke("model", "list", "--registry", registry, "--json")
    assert r.exit_code == 0, r.output
    assert "broken" in said(r) and "invalid JSON" in said(r)          # the warning names it
    assert tiny_version.version in r.stdout                            # and the rest are listed


def test_promote_refuses_a_version_whose_manifest_lists_no_files(tmp_path: Path, tiny_version) -> None:
    import json
    import shutil

    registry = tmp_path / "reg"
    shutil.copytree(tiny_version.path.parent, registry)
    good = Registry(registry).current_id()
    manifest = registry / tiny_version.version / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "files": {}}))
    r = invoke("model", "promote", tiny_version.version, "--registry", registry)
    assert r.exit_code == 1 and "lists no files" in said(r) and "promoted" not in r.output, r.output
    assert Registry(registry).current_id() == good


def test_registry_helpers() -> None:
    with pytest.raises(RegistryError, match="no model registry at"):
        Registry.existing(Path("/nonexistent/registry"))
    with pytest.raises(RegistryError, match="it is a file"):
        Registry.check_writable(Path(__file__))
    Registry.check_writable(Path(__file__).parent / "not-created" / "reg")
    assert not (Path(__file__).parent / "not-created").exists()


# `reckon bench quality | scoring | coldstart | costs` parse their own arguments: an error is a
# ReckonError, which the main CLI prints as one `error:` line.
@pytest.mark.parametrize(("args", "message"), [
    (["quality", "diginetica", "--data-dir", "/nonexistent"],
     "/nonexistent/diginetica/train_sessions.txt: file not found"),
    (["quality", "nope"], "argument dataset: invalid choice"),
    (["quality", "games", "--time-budget", "-1"], "--time-budget must be a finite number of seconds > 0"),
    (["quality", "games", "--set", "epochs=0"], "--set epochs: 0 is out of range"),
    (["quality", "games", "--set", "epochs"], "--set takes KEY=VALUE"),
    (["quality", "games"], "--data-dir: give the folder holding the public datasets"),
    (["scoring", "--registry", ".reckon/models", "--seconds", "-1", "--rounds", "0"], "--rounds must be >= 1"),
    (["scoring", "--registry", "/nonexistent", "--seconds", "-1"], "--seconds must be a finite number > 0"),
    (["scoring", "--registry", "/nonexistent"], "no model registry at /nonexistent"),
    (["coldstart", "--events", "-5"], "--events and --batch must be >= 1"),
    (["costs", "--only", "foo"], "argument --only: invalid choice: 'foo'"),
    (["coldstart", "--events", "100"], "--drift-at must be in [0, --events)"),
    (["coldstart", "--train-seconds", "nan"], "--train-seconds must be a finite number > 0"),
])
def test_model_benchmarks_refuse_bad_arguments(args: list[str], message: str) -> None:
    r = invoke("bench", *args)
    assert isinstance(r.exception, ReckonError) and message in str(r.exception), (r.exception, r.output)
    assert "\n" not in str(r.exception)
    if "--help" in str(r.exception):
        assert f"(`reckon bench {args[0]} --help`)" in str(r.exception)


def test_the_main_entry_point_prints_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    from reckon.streams.cli.main import main

    for argv, code, line in (
        (["train", str(tmp_path / "x.jsonl"), "--epochs", "0"], 2,
         "error: Invalid value for '--epochs': Input should be greater than or equal to 1 (`reckon train --help`)"),
        (["bench", "quality", "diginetica", "--data-dir", "/nonexistent"], 2,
         "error: /nonexistent/diginetica/train_sessions.txt: file not found"),
        (["model", "list", "--registry", str(tmp_path / "nowhere")], 1,
         f"error: no model registry at {tmp_path / 'nowhere'}: the directory does not exist"),
    ):
        monkeypatch.setattr(sys, "argv", ["reckon", *argv])
        with pytest.raises(SystemExit) as exit_:
            main()
        err = capsys.readouterr().err
        assert exit_.value.code == code and err.strip() == line, err


def _tampered(tmp_path: Path, tiny_version, change) -> tuple[Path, str]:
    """A copy of tiny_version as a new version, changed by `change(directory, manifest)` with
    every checksum recomputed: what a hostile or careless hand leaves, past the checksums."""
    import hashlib
    import json
    import shutil

    registry = tmp_path / "reg"
    if not registry.exists():
        shutil.copytree(tiny_version.path.parent, registry)
    version = f"z-{len(list(registry.iterdir()))}"
    shutil.copytree(tiny_version.path, registry / version)
    manifest = json.loads((registry / version / "manifest.json").read_text())
    manifest["version"] = version
    change(registry / version, manifest)
    files = manifest.get("files")
    for name, info in files.items() if isinstance(files, dict) else ():
        path = registry / version / name
        if isinstance(info, dict) and isinstance(info.get("sha256"), str) and path.is_file():
            info.update(sha256=hashlib.sha256(path.read_bytes()).hexdigest(), bytes=path.stat().st_size)
    (registry / version / "manifest.json").write_text(json.dumps(manifest))
    return registry, version


def _ids(ids) -> Callable:
    return lambda d, m: (d / "item_ids.json").write_text(__import__("json").dumps(ids))


def _first_id(value: object) -> Callable:
    """The version's ids with the first replaced by `value` (or all by it, with "all"): as
    many ids as embedding rows, so only the ids themselves are wrong."""
    def change(d: Path, m: dict) -> None:
        import json

        ids = json.loads((d / "item_ids.json").read_text())
        ids = [ids[0]] * len(ids) if value == "all" else [value, *ids[1:]]
        (d / "item_ids.json").write_text(json.dumps(ids))
    return change


@pytest.mark.parametrize(("change", "problem"), [
    (lambda d, m: m["config"].update(max_len=-1), "config.max_len must be an integer in [1, 4096], not -1"),
    (lambda d, m: m["config"].update(max_len=10**9), "config.max_len must be an integer in [1, 4096]"),
    (lambda d, m: m["config"].update(num_items="abc"), "config.num_items must be an integer"),
    (lambda d, m: m.update(config=[1]), "config must be a JSON object"),
    (lambda d, m: m.update(files="x"), "files must be a JSON object"),
    (lambda d, m: m["files"].update({"../../etc/passwd": {"sha256": "0" * 64}}), "is not a file name"),
    (lambda d, m: m["files"]["item_ids.json"].update(sha256=None), "must be an object with a sha256"),
    (lambda d, m: np.save(d / "item_emb.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True),
     "not a numeric .npy array"),
    (lambda d, m: np.save(d / "item_emb.npy", np.zeros(len(np.load(d / "item_emb.npy")), dtype=np.float32)),
     "expected a 2-d numeric array"),
    (_ids({"a": 1}), "expected a JSON list"),
    (_first_id(["nested"]), "every item id must be a string or an integer"),
    (_first_id("all"), "an item id appears twice"),
    (_first_id("x" * 200), "is not 1..128 printable characters"),
    (_first_id("a\x1b[2J"), "is not 1..128 printable characters"),
])
def test_promote_refuses_a_hostile_version_in_one_line(tmp_path: Path, tiny_version, change, problem: str) -> None:
    """Each was a traceback, or promoted (ids of 100,000 characters, 10^9 history positions)."""
    registry, version = _tampered(tmp_path, tiny_version, change)
    good = Registry(registry).current_id()
    r = invoke("model", "promote", version, "--registry", registry)
    assert r.exit_code == 1 and problem in said(r), r.output
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), r.exception
    assert Registry(registry).current_id() == good
