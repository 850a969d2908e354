"""The chaos corpus says the truth about each of its records (checked against the contract
itself), covers every class, and needs no test-only package."""

from __future__ import annotations

import ast
import json
import time
from collections import Counter
from pathlib import Path

from reckon.bench.hostile import HostileCorpus, fuzz_values, sink_poison
from reckon.streams.pipeline.contracts import REASONS, Invalid, parse_event
from reckon.streams.sink.rows import BadMessage, Rows, rows_from_message


def test_every_record_is_what_the_corpus_says() -> None:
    now = time.time()
    corpus = HostileCorpus(seed=3, now=now)
    records = list(corpus.records(3000))
    tenants = frozenset({"acme", "globex", "default"})
    for record in records:
        if record.expected == "duplicate":
            continue
        result = parse_event(record.topic, record.value, now, "default", tenants)
        got = "valid" if not isinstance(result, Invalid) else result.reason
        assert got == record.expected, (record.kind, record.value[:200], result)
    kinds = Counter(r.kind for r in records)
    assert len(kinds) == len(corpus._classes) and min(kinds.values()) > 50
    expected = Counter(r.expected for r in records)
    assert set(REASONS) - {"unknown_topic"} <= set(expected) and expected["valid"] > 100 and expected["duplicate"] > 50


def test_sink_poison_is_refused_where_it_says() -> None:
    table = {"cost-events": "cost_events", "recommendations": "recommendations_log"}
    for topic, value, reason in sink_poison():
        if reason == "sink_rows_failed":
            try:
                rows_from_message(table[topic], value)
            except BadMessage:
                continue
            raise AssertionError(f"{value[:120]!r} became rows")
        Rows().add(table[topic], rows_from_message(table[topic], value))   # builds: the insert refuses it


def test_fuzz_values_are_deterministic_and_varied() -> None:
    values = list(fuzz_values(5, 500, now=1.8e9))
    assert values == list(fuzz_values(5, 500, now=1.8e9)) and len(set(values)) > 400
    assert any(v.startswith(b"{") for v in values) and any(not v.startswith(b"{") for v in values)
    json.loads(next(v for v in values if v.startswith(b"{") and v.isascii()))


def test_chaos_imports_no_test_only_package() -> None:
    bench = Path(__file__).resolve().parents[2] / "bench"
    for path in bench.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            assert not any(n.split(".")[0] in ("hypothesis", "pytest") for n in names), path
