"""What `reckon train | eval` read from sessions and sasrec files: the test set beside a
sessions *file* (not only inside a folder), data with nothing to validate or test on refused
in one line, and a line in the wrong layout named in the given format's own words."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reckon.models.core.errors import DataFormatError
from reckon.models.core.registry import Registry
from reckon.models.training.data import load_dataset, load_sasrec, load_sessions

from .test_cli import make_app

TINY = ["--epochs", "1", "--hidden", "16", "--max-len", "8", "--measure-seconds", "0.05"]


def invoke(*args: str | Path):
    return CliRunner().invoke(make_app(), [str(a) for a in args])


def one_error_line(result) -> str:
    """The single `error:` line a refused command printed (no traceback)."""
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def write_sessions(folder: Path, sessions: int = 60, tests: int = 8) -> Path:
    """train_sessions.txt (walks over 20 items) with test_samples.tsv beside it."""
    rng = random.Random(3)
    walks = []
    for _ in range(sessions + tests):
        start, length = rng.randrange(20), rng.randrange(3, 7)
        walks.append([(start + i) % 20 + 1 for i in range(length)])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train_sessions.txt").write_text("".join(" ".join(map(str, w)) + "\n" for w in walks[:sessions]))
    (folder / "test_samples.tsv").write_text(
        "".join(" ".join(map(str, w[:-1])) + "\t" + str(w[-1]) + "\n" for w in walks[sessions:]))
    return folder / "train_sessions.txt"


def test_the_test_file_beside_a_sessions_file_is_read(tmp_path: Path) -> None:
    """Given the file (not its folder), test_samples.tsv beside it was ignored: no test score,
    and `eval` of the same file said there was nothing to evaluate."""
    data = write_sessions(tmp_path / "sess")
    assert load_dataset(data, "sessions").test.targets.tolist() == \
        load_dataset(data.parent, "sessions").test.targets.tolist() and len(load_dataset(data, "sessions").test) == 8
    reg = tmp_path / "reg"
    r = invoke("train", data, "--format", "sessions", "--registry", reg, *TINY, "--promote", "--json")
    assert r.exit_code == 0, r.output
    manifest = json.loads(r.stdout)
    assert manifest["data"]["test"] == str(data.parent / "test_samples.tsv")
    assert manifest["data"]["test_samples"] == 8 and manifest["metrics"]["test"]["count"] == 8
    r = invoke("eval", data, "--format", "sessions", "--registry", reg, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["count"] == 8


def test_an_explicit_test_file_wins_over_the_one_beside(tmp_path: Path) -> None:
    data = write_sessions(tmp_path / "sess")
    other = tmp_path / "other.tsv"
    other.write_text("1 2\t3\n")
    assert load_dataset(data, "sessions", other).test.targets.tolist() == [3]


def test_sessions_with_nothing_to_validate_or_test_on_are_refused(tmp_path: Path) -> None:
    """One session (2 % of it holds out none) and no test file trained and registered a
    version with empty validation and test metrics, without a word."""
    one = tmp_path / "one.txt"
    one.write_text("1 2 3\n")
    reg = tmp_path / "reg"
    r = invoke("train", one, "--format", "sessions", "--registry", reg, *TINY)
    line = one_error_line(r)
    assert line == (f"error: {one}: no validation or test examples: its one session of two or more items cannot "
                    "be held out for validation and trained on, and no test file (test_samples.tsv beside the "
                    "data, or --test)"), line
    assert "epoch 1" not in r.output and (not reg.exists() or not Registry(reg).list())
    with pytest.raises(DataFormatError, match="no validation or test examples"):
        load_sessions(one)
    empty_test = tmp_path / "empty.tsv"
    empty_test.write_text("\n")
    with pytest.raises(DataFormatError, match=f"and {empty_test} holds no test examples"):
        load_sessions(one, empty_test)
    two = tmp_path / "two.txt"
    two.write_text("1 2 3\n4 5\n")
    with pytest.raises(DataFormatError, match="a valid_fraction of 0 holds out no session for validation"):
        load_sessions(two, valid_fraction=0)
    # a test file beside it is enough
    (tmp_path / "test_samples.tsv").write_text("1 2\t3\n")
    assert len(load_dataset(one, "sessions").test) == 1


def test_too_few_sessions_for_the_share_still_hold_out_the_newest_without_a_test_set(tmp_path: Path) -> None:
    """2 % of 3 sessions is none: validation was empty, the version trained and scored on nothing."""
    data = tmp_path / "three.txt"
    data.write_text("1 2 3\n2 3 4\n4 5 6\n")
    split = load_sessions(data, valid_fraction=0.02)
    assert [s.tolist() for s in split.train] == [[1, 2, 3], [2, 3, 4]]
    assert split.valid.targets.tolist() == [5, 6] and split.description["valid_sessions"] == 1
    test = tmp_path / "t.tsv"
    test.write_text("1 2\t3\n")
    with_test = load_sessions(data, test, valid_fraction=0.02)       # a test set: the share as given
    assert len(with_test.train) == 3 and not len(with_test.valid)
    r = invoke("train", data, "--format", "sessions", "--registry", tmp_path / "reg", *TINY, "--json")
    assert r.exit_code == 0, r.output
    manifest = json.loads(r.stdout)
    assert manifest["data"]["valid_samples"] == 2 and manifest["metrics"]["valid"]["count"] == 2


def test_sasrec_with_no_user_of_three_items_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "pairs.txt"
    data.write_text("1 1\n1 2\n2 3\n2 4\n")
    reg = tmp_path / "reg"
    r = invoke("train", data, "--format", "sasrec", "--registry", reg, *TINY)
    line = one_error_line(r)
    assert line == (f"error: {data}: no validation or test examples: no user has three or more items "
                    "(a user's last item is a test example, the one before it validation)")
    assert not reg.exists() or not any(Registry(reg).list())


@pytest.mark.parametrize(("fmt", "layout"), [
    ("sasrec", "expected 'user item'"),
    ("sessions", "expected space-separated integer item ids"),
])
def test_a_line_in_another_layout_is_named_in_the_formats_own_words(tmp_path: Path, events_file: Path,
                                                                    fmt: str, layout: str) -> None:
    """Events JSONL given --format sasrec was told the sessions layout."""
    r = invoke("train", events_file, "--format", fmt, "--registry", tmp_path / "reg", *TINY)
    line = one_error_line(r)
    assert line.startswith(f"error: {events_file}:1: {layout}, got '{{"), line
    if fmt == "sasrec":
        assert "space-separated" not in line


@pytest.mark.parametrize("line", ["u1 5", "1 five", "1 5 6", "1\t{x}"])
def test_sasrec_bad_lines_say_user_item(tmp_path: Path, line: str) -> None:
    path = tmp_path / "v.txt"
    path.write_text(f"1 5\n{line}\n")
    with pytest.raises(DataFormatError, match=r"v\.txt:2: expected 'user item', got ") as err:
        load_sasrec(path)
    assert "space-separated" not in str(err.value)


@pytest.mark.parametrize("line", ["1 x\t3", "1 2\tthree", "1 2 3"])
def test_a_bad_test_file_line_names_the_test_layout(tmp_path: Path, line: str) -> None:
    data = write_sessions(tmp_path / "sess")
    (data.parent / "test_samples.tsv").write_text(f"1 2\t3\n{line}\n")
    with pytest.raises(DataFormatError, match=r"test_samples\.tsv:2: expected 'prefix<TAB>label' \(space-sep"):
        load_dataset(data.parent, "sessions")
    r = invoke("train", data, "--format", "sessions", "--registry", tmp_path / "reg", *TINY)
    assert one_error_line(r).startswith(f"error: {data.parent / 'test_samples.tsv'}:2: expected 'prefix<TAB>label'")
