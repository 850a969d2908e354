"""A JSONL file is replayed line by line as it is: whatever a line holds, the replay goes on
and the worker's contract names what is wrong with it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from reckon.streams.core.errors import ReckonError
from reckon.streams.pipeline.contracts import Invalid, parse_event
from reckon.streams.traffic.replay import MAX_LINE_BYTES, records_from_jsonl, records_from_sessions

from ..kafka_io import read_topic


def _contract(topic: str, raw: bytes) -> str:        # as `reckon replay` judges a line
    event = parse_event(topic, raw)
    return event.reason if isinstance(event, Invalid) else ""


def test_hostile_lines_are_passed_on_and_keys_follow_the_contracts_user_id(tmp_path) -> None:
    click = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "action": "view", "ts": time.time()}
    lines = [json.dumps(click), json.dumps({**click, "user_id": 42}), json.dumps({**click, "user_id": True}),
             json.dumps({**click, "user_id": [[["x"]]]}), json.dumps({"event_id": "s", "user_id": "u2", "query": "q"}),
             "not json", "[" * 5000 + "]" * 5000, '{"user_id": "\\ud800"}']
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    records = list(records_from_jsonl(path, _contract))
    assert [(r.topic, r.key, r.valid, r.reason) for r in records] == [   # valid: the contract's verdict
        ("clicks", b"u1", True, ""), ("clicks", b"42", True, ""), ("clicks", b"", False, "wrong_type"),
        ("clicks", b"", False, "wrong_type"), ("searches", b"u2", False, "missing_field"),
        ("clicks", b"", False, "not_json"), ("clicks", b"", False, "too_deep"),
        ("clicks", b"\\ud800", False, "missing_field")]
    assert [r.value for r in records] == [line.encode() for line in lines]


def test_a_bom_before_the_first_line_is_no_part_of_the_event_and_a_runaway_line_stops_the_replay(tmp_path) -> None:
    click = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "action": "view", "ts": time.time()}
    path = tmp_path / "notepad.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(click).encode() + b"\r\n")
    [record] = records_from_jsonl(path, _contract)
    assert record.valid and record.value == json.dumps(click).encode()     # the worker read the BOM as not_json
    runaway = tmp_path / "runaway.jsonl"
    runaway.write_bytes(json.dumps(click).encode() + b"\n" + b"0" * (MAX_LINE_BYTES + 10))
    records = records_from_jsonl(runaway, _contract)
    assert next(records).valid
    with pytest.raises(ReckonError, match=r"runaway.jsonl:2: a line over 524288 bytes"):
        next(records)


@pytest.mark.parametrize(("content", "problem"), [
    (b"1 2 3\n\xff\xfe 4\n", ":2: not UTF-8 text"),                             # was a traceback
    (b"1 2 x\n", ":1: expected numeric item ids"),
    (b"1 " + b"9" * 200 + b"\n", ":1: expected numeric item ids (at most 128 digits)"),   # the contract's limit
    ("1 \u0661\u0662\n".encode(), ":1: expected numeric item ids"),              # digits, but not ASCII ones
])
def test_a_session_file_that_is_not_the_format_stops_with_its_line(tmp_path, content: bytes, problem: str) -> None:
    path = tmp_path / "sessions.txt"
    path.write_bytes(content)
    with pytest.raises(ReckonError, match=f"^{path}{problem}".replace("(", r"\(").replace(")", r"\)")):
        list(records_from_sessions(path))


def test_session_lines_become_one_users_clicks_that_the_contract_takes(tmp_path) -> None:
    path = tmp_path / "sessions.txt"
    path.write_text("1 2 3\n\n4\t5\n")
    records = list(records_from_sessions(path))
    assert [json.loads(r.value)["item_id"] for r in records] == ["1", "2", "3", "4", "5"]
    assert {r.key for r in records} == {b"s1", b"s3"}
    assert all(not isinstance(parse_event("clicks", r.value), Invalid) for r in records)


@pytest.mark.integration
def test_a_bad_line_stops_the_replay_saying_what_was_sent_before_it(fresh_broker, tmp_path) -> None:
    from reckon.streams.kafka.broker import create_topics
    from reckon.streams.traffic.replay import produce


    create_topics(fresh_broker.bootstrap_servers, 1, topics=["clicks"])
    path = tmp_path / "sessions.txt"
    path.write_bytes(b"1 2 3\n\xff 4\n")
    with pytest.raises(ReckonError, match=r":2: not UTF-8 text \(stopped there: the 3 events before it were sent\)"):
        asyncio.run(produce(fresh_broker.bootstrap_servers, records_from_sessions(path)))
    sent = read_topic(fresh_broker.bootstrap_servers, "clicks", 3, timeout_s=20)
    assert sorted(json.loads(m.value)["item_id"] for m in sent) == ["1", "2", "3"]


@pytest.mark.integration
def test_reckon_replay_says_what_the_worker_will_refuse_and_fails_when_it_is_everything(fresh_broker, tmp_path) -> None:
    """A file of 'user item' lines replayed as events was 100 % dead-lettered, exit 0, no word."""
    import gzip
    import os
    import subprocess
    import sys

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RECKON_")},
           "RECKON_BOOTSTRAP_SERVERS": fresh_broker.bootstrap_servers}

    def replay(path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "replay", "--file", str(path), *args],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    wrong = tmp_path / "pairs.txt"
    wrong.write_text("1 2\n1 3\n2 2\n")
    refused = replay(wrong)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip() == (f"error: none of the first 3 events of {wrong} passes the contract (3 not_json); "
                                      "nothing sent (the wrong file, or --format?)")
    longer = tmp_path / "pairs-1500.txt"        # refused on its first 1,000 lines
    longer.write_text("".join(f"{i} {i}\n" for i in range(1_500)))
    assert "none of the first 1,000 events" in replay(longer).stderr
    assert read_topic(fresh_broker.bootstrap_servers, "clicks", 1, timeout_s=5) == []    # neither sent one
    mixed = tmp_path / "events.jsonl"
    good = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "action": "view", "ts": time.time()}
    mixed.write_text(json.dumps(good) + "\n" + json.dumps({**good, "event_id": "e2", "ts": 1.0}) + "\n")
    for fmt in ("events", "jsonl"):
        partly = replay(mixed, "--format", fmt)
        assert partly.returncode == 0 and json.loads(partly.stdout)["valid"] == 1, partly.stderr
        assert partly.stderr.strip() == ("1 of the 2 events sent do not pass the contract (1 ts_out_of_range): "
                                         "the worker dead-letters them")

    # the folder `reckon train --format sessions` reads replays its training sessions; no other folder is guessed at
    folder = tmp_path / "shop"
    folder.mkdir()
    no_sessions = replay(folder, "--format", "sessions")
    assert no_sessions.returncode == 2 and no_sessions.stderr.strip() == (
        f"error: --file {folder}: a sessions folder holds train_sessions.txt (as `reckon train` reads it); "
        "this one has none")
    (folder / "train_sessions.txt").write_text("11 12 13\n")
    (folder / "test_samples.tsv").write_text("11\t12\n")
    whole = replay(folder, "--format", "sessions")
    assert whole.returncode == 0 and json.loads(whole.stdout)["valid"] == 3, whole.stderr
    clicked = [json.loads(m.value)["item_id"] for m in read_topic(fresh_broker.bootstrap_servers, "clicks", 7,
                                                                    timeout_s=20)]
    assert sorted(clicked) == ["11", "12", "13"] + ["i1"] * 4          # beside the 4 of the events file above
    packed = tmp_path / "packed"                       # gzipped, as `reckon train` reads it
    packed.mkdir()
    (packed / "train_sessions.txt.gz").write_bytes(gzip.compress(b"21 22\n"))
    assert json.loads(replay(packed, "--format", "sessions").stdout)["valid"] == 2
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(json.dumps(good).encode() * 50)[:30])
    cut = replay(tmp_path / "cut.jsonl.gz")
    assert cut.returncode == 2 and "cut.jsonl.gz: not a readable gzip file" in cut.stderr, cut.stderr
    (tmp_path / "bomb.txt.gz").write_bytes(gzip.compress(b"7" * 600_000))      # one line, no breaks
    bomb = replay(tmp_path / "bomb.txt.gz", "--format", "sessions")
    assert bomb.returncode == 2 and "bomb.txt.gz:1: a line over 524288 bytes; is this a sessions file?" in bomb.stderr
    events_folder = replay(folder)
    assert events_folder.returncode == 2 and events_folder.stderr.strip() == (
        f"error: --file {folder} is a folder: --format events replays one JSONL file")


@pytest.mark.integration
def test_two_generated_replays_of_one_seed_are_new_traffic(fresh_broker, tmp_path) -> None:
    """The second `reckon replay` sent the first's event ids again: the worker dropped all as duplicates."""
    import os
    import subprocess
    import sys

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RECKON_")},
           "RECKON_BOOTSTRAP_SERVERS": fresh_broker.bootstrap_servers}
    for _ in range(2):
        subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "replay", "--events", "40"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True)
    sent = [json.loads(m.value) for topic in ("clicks", "searches")
            for m in read_topic(fresh_broker.bootstrap_servers, topic, 1, timeout_s=5)]
    assert len(sent) == 80 and len({e["event_id"] for e in sent}) == 80
    assert len({e["item_id"] for e in sent if "item_id" in e}) < 80          # same seed: the same catalog walk
