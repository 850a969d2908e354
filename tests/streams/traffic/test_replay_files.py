"""A JSONL file is replayed line by line as it is: whatever a line holds, the replay goes on
and the worker's contract names what is wrong with it."""

from __future__ import annotations

import json

from reckon.streams.traffic.replay import records_from_jsonl


def test_hostile_lines_are_passed_on_and_keys_follow_the_contracts_user_id(tmp_path) -> None:
    click = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "action": "view", "ts": 1.0}
    lines = [json.dumps(click), json.dumps({**click, "user_id": 42}), json.dumps({**click, "user_id": True}),
             json.dumps({**click, "user_id": [[["x"]]]}), json.dumps({"event_id": "s", "user_id": "u2", "query": "q"}),
             "not json", "[" * 5000 + "]" * 5000, '{"user_id": "\\ud800"}']
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    records = list(records_from_jsonl(path))
    assert [(r.topic, r.key, r.valid, r.reason) for r in records] == [
        ("clicks", b"u1", True, ""), ("clicks", b"42", True, ""), ("clicks", b"", True, ""),
        ("clicks", b"", True, ""), ("searches", b"u2", True, ""), ("clicks", b"", False, "not_json"),
        ("clicks", b"", False, "too_deep"), ("clicks", b"\\ud800", True, "")]
    assert [r.value for r in records] == [line.encode() for line in lines]
