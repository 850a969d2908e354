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
    # a CSV export: the formats read are named; a broken JSON line gets no such hint
    with pytest.raises(DataFormatError, match=r"my.csv:1: invalid JSON: .*; --format events reads JSON lines"):
        load_events(write(tmp_path / "my.csv", "user_id,item_id\n1,2\n"))
    with pytest.raises(DataFormatError, match=r"bad.jsonl:1: invalid JSON: [^;]*$"):
        load_events(write(tmp_path / "bad.jsonl", '{"event_id":\n'))
    # a folder is named as one, and a sessions folder given another format says which it is
    (tmp_path / "digi").mkdir()
    write(tmp_path / "digi" / "train_sessions.txt", "1 2 3\n")
    with pytest.raises(DataFormatError, match=r"digi: a directory of sessions \(train_sessions.txt\): --format sessions"):
        load_dataset(tmp_path / "digi", "events")
    with pytest.raises(DataFormatError, match=r": a directory: give the sasrec file"):
        load_dataset(tmp_path, "sasrec")


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


@pytest.mark.parametrize("loader", [load_sessions, load_sasrec])
def test_sparse_item_ids_are_numbered_not_allocated_to_their_size(tmp_path: Path, loader) -> None:
    """Ids up to 9,000,000 asked for a table of 9 million rows and a 32 GB score matrix at eval:
    sparse ids are numbered 1..K in id order, their names kept; ids about 1..N stay their own rows."""
    if loader is load_sessions:
        text = "9000001 42 7000000000\n42 9000001\n5 42 9000001\n"
    else:
        text = "1 9000001\n1 42\n1 7000000000\n2 42\n2 9000001\n2 5\n"
    data = loader(write(tmp_path / "data.txt", text))
    assert data.num_items == 4 and data.item_ids == ["5", "42", "9000001", "7000000000"]
    rows = {name: row for row, name in enumerate(data.item_ids, start=1)}
    sequences = [s.tolist() for s in data.train] + [h.tolist() + [t] for h, t in zip(data.valid.histories,
                                                                                     data.valid.targets.tolist())]
    assert all(1 <= row <= 4 for seq in sequences for row in seq)
    if loader is load_sessions:
        assert data.train[0].tolist() == [rows["9000001"], rows["42"], rows["7000000000"]]
    # a version's numbering reads other data the same way; items it does not know are left out
    again = loader(write(tmp_path / "more.txt", text.replace("5", "6")), item_ids=data.item_ids)
    assert again.item_ids == data.item_ids and all(0 < r <= 4 for s in again.train for r in s.tolist())
    dense = loader(write(tmp_path / "dense.txt", "1 2 3\n2 3 5\n" if loader is load_sessions else
                         "1 1\n1 2\n1 3\n2 2\n2 5\n2 3\n"))
    assert dense.item_ids == ["1", "2", "3", "4", "5"]          # 4 unused: still every id up to the largest


@pytest.mark.parametrize("loader", [load_sessions, load_sasrec])
def test_an_item_id_past_int64_is_refused(tmp_path: Path, loader) -> None:
    """It was an OverflowError."""
    path = write(tmp_path / "data.txt", "1 2 3\n1 " + "9" * 30 + "\n" if loader is load_sessions else
                 "7 1\n7 " + "9" * 30 + "\n")
    with pytest.raises(DataFormatError, match="is above 9,223,372,036,854,775,807"):
        loader(path)


def test_a_versions_numbering_drops_test_examples_of_labels_it_does_not_know(tmp_path: Path) -> None:
    train = write(tmp_path / "train_sessions.txt", "1 2 3\n2 3 4\n")
    test = write(tmp_path / "test_samples.tsv", "1 2\t3\n1 9\t4\n2\t9\n")
    data = load_sessions(train, test, item_ids=["1", "2", "3", "4"])
    assert data.test.targets.tolist() == [3, 4] and [h.tolist() for h in data.test.histories] == [[1, 2], [1]]
    assert data.description["test_samples_of_unknown_items"] == 1 and data.num_items == 4
    with pytest.raises(ValueError, match="not integer ids"):
        load_sessions(train, test, item_ids=["shoe", "hat"])


def test_sasrec_users_are_keys_not_rows(tmp_path: Path) -> None:
    data = load_sasrec(write(tmp_path / "data.txt", "0 1\n0 2\n0 3\n99999999999 2\n99999999999 3\n99999999999 1\n"))
    assert data.num_items == 3 and data.description["users"] == 2


def test_a_gzipped_file_is_read_and_a_broken_one_named(tmp_path: Path) -> None:
    import gzip

    plain = load_sessions(write(tmp_path / "s.txt", "1 2 3\n2 3 4\n3 4 5\n"), valid_fraction=0.34)
    packed = tmp_path / "s.txt.gz"
    packed.write_bytes(gzip.compress(b"1 2 3\n2 3 4\n3 4 5\n"))
    data = load_sessions(packed, valid_fraction=0.34)
    assert [s.tolist() for s in data.train] == [s.tolist() for s in plain.train] and data.item_ids == plain.item_ids
    folder = tmp_path / "packed"
    folder.mkdir()
    (folder / "train_sessions.txt.gz").write_bytes(gzip.compress(b"1 2 3\n2 3 4\n"))
    (folder / "test_samples.tsv.gz").write_bytes(gzip.compress(b"1 2\t3\n"))
    assert load_dataset(folder, "sessions").test.targets.tolist() == [3]     # a folder of both, gzipped
    broken = tmp_path / "cut.txt.gz"
    broken.write_bytes(gzip.compress(b"1 2 3\n" * 1000)[:40])
    with pytest.raises(DataFormatError, match="cut.txt.gz: not a readable gzip file"):
        load_sessions(broken)


def test_a_file_without_line_breaks_is_refused_at_a_bound_not_read_whole(tmp_path: Path) -> None:
    """A gzip bomb (or any binary file) was one line, read whole into memory before any check."""
    import gzip

    from reckon.models.training.data import MAX_LINE_CHARS

    bomb = tmp_path / "bomb.txt.gz"
    bomb.write_bytes(gzip.compress(b"1" * (MAX_LINE_CHARS + 10)))
    for fmt in ("sessions", "sasrec", "events"):
        with pytest.raises(DataFormatError, match=f"bomb.txt.gz:1: a line over {MAX_LINE_CHARS:,} characters"):
            load_dataset(bomb, fmt)


def test_a_header_line_is_skipped_and_recorded(tmp_path: Path) -> None:
    """Exports write a header ('user_id item_id'): a first line holding no integer is skipped and
    named in the description (the CLI says so); a line of words further on is still refused."""
    plain = load_sasrec(write(tmp_path / "plain.txt", "1 5\n1 6\n1 7\n2 5\n2 6\n2 8\n"))
    headed = load_sasrec(write(tmp_path / "headed.txt", "\nuser_id\titem_id\n1 5\n1 6\n1 7\n2 5\n2 6\n2 8\n"))
    assert [s.tolist() for s in headed.train] == [s.tolist() for s in plain.train]
    assert headed.description["headers_skipped"] == {str(tmp_path / "headed.txt"): "user_id\titem_id"}
    assert "headers_skipped" not in plain.description
    with pytest.raises(DataFormatError, match=r"late.txt:3: expected 'user item', got 'user item'"):
        load_sasrec(write(tmp_path / "late.txt", "1 5\n1 6\nuser item\n"))
    with pytest.raises(DataFormatError, match=r"mixed.txt:1: expected 'user item'"):   # an integer in it: data
        load_sasrec(write(tmp_path / "mixed.txt", "user 5\n1 6\n"))
    for name, first in (("csv.txt", "user_id,item_id"), ("event.txt", '{"user_id": "u1", "item_id": "i1"}')):
        with pytest.raises(DataFormatError, match=rf"{name}:1: expected 'user item'"):   # not column names
            load_sasrec(write(tmp_path / name, f"{first}\n1 5\n"))
    train = write(tmp_path / "train_sessions.txt", "items\n" + "".join(f"{i} {i + 1} {i + 2}\n" for i in range(1, 30)))
    test = write(tmp_path / "test_samples.tsv", "prefix\tlabel\n1 2\t3\n")
    sessions = load_sessions(train, test)
    assert sessions.description["headers_skipped"] == {str(train): "items", str(test): "prefix\tlabel"}
    assert len(sessions.test) == 1 and sessions.test.histories[0].tolist() == [1, 2]
    # a byte-order mark (Windows exports) is not part of the first line, data or header
    marked = tmp_path / "bom.txt"
    marked.write_bytes(b"\xef\xbb\xbf" + (tmp_path / "plain.txt").read_bytes())
    assert [s.tolist() for s in load_sasrec(marked).train] == [s.tolist() for s in plain.train]
