import json
from pathlib import Path

import numpy as np
import pytest

from reckon.models.core.errors import DataFormatError
from reckon.models.core.terms import hash_terms, tokenize
from reckon.models.training.data import load_dataset, load_events, load_sasrec, load_sessions


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_sessions_split_and_prefixes(tmp_path: Path) -> None:
    train = write(tmp_path / "train_sessions.txt", "1 2 3\n4 5\n6\n2 7 8 9\n")
    test = write(tmp_path / "test_samples.tsv", "1 2\t3\n4\t10\n")
    data = load_sessions(train, test, valid_fraction=0.34)
    # single-item sessions carry no target; the last third of sessions is validation
    assert [s.tolist() for s in data.train] == [[1, 2, 3], [4, 5]]
    assert [h.tolist() for h in data.valid.histories] == [[2], [2, 7], [2, 7, 8]]
    assert data.valid.targets.tolist() == [7, 8, 9]
    assert data.test.targets.tolist() == [3, 10]
    assert data.num_items == 10 and data.item_ids[9] == "10"  # test-only item 10 is rankable
    assert load_dataset(tmp_path, "sessions", valid_fraction=0.34).test.targets.tolist() == [3, 10]


@pytest.mark.parametrize("fmt", ["events", "jsonl", "sasrec"])
def test_a_test_file_for_a_format_that_reads_none_is_refused_not_ignored(tmp_path: Path, fmt: str) -> None:
    """`--test` with events or sasrec data was ignored: the score printed was not on that file."""
    data = write(tmp_path / "data.txt", "1 1\n1 2\n1 3\n")
    test = write(tmp_path / "test_samples.tsv", "1 2\t3\n")
    with pytest.raises(ValueError, match="--format sessions only"):
        load_dataset(data, fmt, test)


@pytest.mark.parametrize("fmt", ["sessions", "sasrec"])
def test_query_buckets_for_data_without_searches_are_refused(tmp_path: Path, fmt: str) -> None:
    data = write(tmp_path / "data.txt", "1 1\n1 2\n1 3\n")
    with pytest.raises(ValueError, match="--query-buckets hashes events' search terms"):
        load_dataset(data, fmt, query_buckets=64)


def test_sessions_bad_line_names_file_and_line(tmp_path: Path) -> None:
    train = write(tmp_path / "train.txt", "1 2\n3 x 4\n")
    with pytest.raises(DataFormatError) as err:
        load_sessions(train)
    assert err.value.line == 2 and "train.txt:2" in str(err.value)
    test = write(tmp_path / "test.tsv", "1 2\t3\n1 2 3\n")
    with pytest.raises(DataFormatError, match="test.tsv:2"):
        load_sessions(write(tmp_path / "ok.txt", "1 2\n"), test)
    with pytest.raises(DataFormatError, match="file not found"):
        load_sessions(tmp_path / "missing.txt")


def test_a_file_of_another_format_given_as_sessions_is_named(tmp_path: Path) -> None:
    # Read as sessions, 'user item' lines were 2-item sessions and a test file's lines sessions
    # too: both trained and registered a version that had learned nothing.
    pairs = write(tmp_path / "Video.txt", "".join(f"{u} {i}\n" for u in range(1, 8) for i in range(u, u + 4)))
    with pytest.raises(DataFormatError, match=r"a 'user item' file\? \(--format sasrec\)"):
        load_sessions(pairs)
    with pytest.raises(DataFormatError, match=r"test.tsv:1: a tab: this is a test file's layout"):
        load_sessions(write(tmp_path / "test.tsv", "1 2\t3\n"))
    # sessions of two items each, from different users, are sessions
    load_sessions(write(tmp_path / "short.txt", "".join(f"{i} {i + 1}\n" for i in range(1, 40))))
    with pytest.raises(DataFormatError, match=r"invalid JSON: .*; a sessions or 'user item' file\?"):
        load_events(pairs)


def test_sasrec_split_is_leave_last_out(tmp_path: Path) -> None:
    path = write(tmp_path / "v.txt", "1 5\n1 6\n2 1\n1 7\n1 8\n2 2\n")
    data = load_sasrec(path)
    assert [s.tolist() for s in data.train] == [[5, 6], [1, 2]]  # user 2 has 2 items: training only
    assert [h.tolist() for h in data.valid.histories] == [[5, 6]] and data.valid.targets.tolist() == [7]
    assert [h.tolist() for h in data.test.histories] == [[5, 6, 7]] and data.test.targets.tolist() == [8]
    assert data.test.seen[0].tolist() == [5, 6, 7, 8]
    with pytest.raises(DataFormatError, match="v2.txt:2"):
        load_sasrec(write(tmp_path / "v2.txt", "1 5\n1 5 6\n"))


def test_events_order_by_ts_dedup_and_query_context(events_file: Path) -> None:
    evs = [
        {"event_id": "a", "user_id": "u", "item_id": "x", "action": "view", "ts": 3.0},
        {"event_id": "b", "user_id": "u", "item_id": "y", "action": "view", "ts": 1.0},
        {"event_id": "b", "user_id": "u", "item_id": "y", "action": "view", "ts": 1.0},  # duplicate delivery
        {"event_id": "s", "user_id": "u", "query": "Red Shoes", "ts": 2.0},
        {"event_id": "c", "user_id": "u", "item_id": "z", "action": "cart", "ts": 4.0},
        {"event_id": "d", "user_id": "u", "item_id": "w", "action": "purchase", "ts": 5.0},
    ]
    data = load_events(evs, query_buckets=16, query_terms=3)
    ids = data.item_ids
    assert [ids[i - 1] for i in data.test.histories[0]] == ["y", "x", "z"]
    assert ids[data.test.targets[0] - 1] == "w"
    assert [ids[i - 1] for i in data.train[0]] == ["y", "x"]
    want = hash_terms(["red", "shoes"], 16)
    assert data.train_terms[0][0].tolist() == [0, 0, 0]  # nothing searched before the first click
    assert data.train_terms[0][1].tolist() == [0] + want  # the search at ts=2 precedes x
    assert data.test.terms[0].tolist() == [0] + want
    big = load_events(events_file)
    assert big.description["users"] == 60 and len(big.test) == 60


def test_events_bad_input_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", json.dumps({"event_id": "1", "user_id": "u", "item_id": "i",
                                                   "action": "view", "ts": 1}) + "\n{not json\n")
    with pytest.raises(DataFormatError, match="e.jsonl:2: invalid JSON"):
        load_events(path)
    with pytest.raises(DataFormatError, match="<events>:1: click event is missing 'ts'"):
        load_events([{"event_id": "1", "user_id": "u", "item_id": "i", "action": "view"}])
    bad = {"event_id": "1", "user_id": "u", "item_id": "i", "action": "like", "ts": 1}
    with pytest.raises(DataFormatError, match="unknown action"):
        load_events([bad])
    good = [{"event_id": str(i), "user_id": "u", "item_id": "i", "action": "view", "ts": i} for i in range(2, 5)]
    lenient = load_events([bad, *good, {"junk": True}], strict=False)
    assert lenient.description["skipped"] == 2 and lenient.description["clicks"] == 3


def test_events_with_fixed_vocabulary_drops_unknown_items() -> None:
    evs = [{"event_id": str(i), "user_id": "u", "item_id": item, "action": "view", "ts": float(i)}
           for i, item in enumerate(["a", "new", "b", "a", "b"])]
    data = load_events(evs, item_ids=["a", "b"])
    assert data.item_ids == ["a", "b"]
    assert np.concatenate([data.test.histories[0], data.test.targets]).tolist() == [1, 2, 1, 2]


def test_terms_are_stable_and_reserve_zero() -> None:
    assert tokenize("Red-Shoes, size 42!") == ["red", "shoes", "size", "42"]
    ids = hash_terms(["red", "RED", "shoes"], 8)
    assert ids[0] == ids[1] and all(1 <= i <= 8 for i in ids)
    assert hash_terms(["red"], 0) == []


@pytest.mark.parametrize(("loader", "line"), [
    (load_sessions, "1 2 10000001"),
    (load_sessions, "1 " + "9" * 30),                    # past int64: was an OverflowError
    (load_sasrec, "7 10000001"),
])
def test_item_ids_are_rows_so_a_huge_one_is_refused_not_allocated(tmp_path: Path, loader, line: str) -> None:
    """An id of 10^9 asked for an embedding table of 10^9 rows (sasrec: 10^9 id strings first)."""
    path = write(tmp_path / "data.txt", f"1 2 3\n{line}\n" if loader is load_sessions else f"7 1\n{line}\n")
    with pytest.raises(DataFormatError, match="is above 10,000,000: these ids are the model's row numbers"):
        loader(path)


def test_sasrec_users_are_keys_not_rows(tmp_path: Path) -> None:
    data = load_sasrec(write(tmp_path / "data.txt", "0 1\n0 2\n0 3\n99999999999 2\n99999999999 3\n99999999999 1\n"))
    assert data.num_items == 3 and data.description["users"] == 2
