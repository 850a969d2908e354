"""Hostile events for `reckon chaos` (poison, fuzz), generated with `random` alone: a plain
install has no test-only packages.

`HostileCorpus.records(n)` mixes, class by class, what a careless or malicious producer
can send (every field, every type confusion, encoding tricks, nested junk, huge values,
unknown tenants, redeliveries) with valid events that look odd (non-ASCII, escapes,
integer ids, unknown fields) and must be accepted. Each record says what must become of
it: "valid", "duplicate", or the contract's reason code. `sink_poison` builds messages
that reach the cost sink's topics directly, which it must dead-letter alone.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from reckon.streams.pipeline.contracts import MAX_EVENT_BYTES, MAX_ID_CHARS, MAX_QUERY_CHARS, MAX_RESULTS

_IDS = ("event_id", "user_id", "item_id")
_ODD_VALID_TEXT = ("Zoë", "東京", "ü" * 5, "🛒cart", "a b", "x-1_2.3", "İstanbul", "\u00e9t\u00e9")
_SURROGATES = ("\\ud800", "\\udfff", "\\udc00\\ud800", "a\\ud83d")            # as JSON escapes
_CONTROLS = ("\\u0000", "\\u001b", "\\u007f", "\\u0085", "\\t", "\\n", "\\r", "\\u0008")
_INVISIBLE = ("\\u202e", "\\u200b", "\\ufeff", "\\u2028", "\\u00a0", "\\u2066", "\\u3000")


@dataclass(frozen=True)
class HostileRecord:
    topic: str
    key: bytes
    value: bytes | None    # None: a null value (a tombstone)
    expected: str          # "valid", "duplicate", or the contract's reason
    kind: str              # the class of hostile input


class HostileCorpus:
    def __init__(self, seed: int = 16, tenants: tuple[str, ...] = ("acme", "globex"),
                 unknown_tenant: str | None = "mallory", now: float | None = None) -> None:
        self.rng = random.Random(seed)
        self.tenants = tenants
        self.unknown_tenant = unknown_tenant      # None: the worker serves every tenant
        self.now = time.time() if now is None else now
        self._seq = 0
        self._sent: list[HostileRecord] = []      # valid ones, for redeliveries
        self._classes: list[tuple[str, Callable[[], HostileRecord]]] = [
            (name.removeprefix("_h_"), getattr(self, name)) for name in sorted(dir(self)) if name.startswith("_h_")]

    def records(self, n: int) -> Iterator[HostileRecord]:
        """n records, every class in turn (then again), field choices at random."""
        for i in range(n):
            name, build = self._classes[i % len(self._classes)]
            record = build()
            if record.expected == "valid":
                self._sent.append(record)
            yield HostileRecord(record.topic, record.key, record.value, record.expected, name)

    # --- building blocks -------------------------------------------------------------------------

    def _event(self, kind: str | None = None) -> dict:
        self._seq += 1
        kind = kind or self.rng.choice(["click", "search"])
        event = {"event_id": f"h{self._seq:08d}", "user_id": f"hu{self.rng.randrange(200)}",
                 "ts": round(self.now - self.rng.random() * 60, 3), "tenant": self.rng.choice(self.tenants),
                 "session_id": f"hs{self.rng.randrange(10**6)}"}
        if kind == "click":
            event |= {"item_id": f"i{self.rng.randrange(2000)}", "price": round(self.rng.random() * 100, 2),
                      "action": self.rng.choice(["view", "cart", "purchase"])}
        else:
            event |= {"query": self.rng.choice(["red lamp", "wool socks", "coffee grinder"]),
                      "results": [f"i{self.rng.randrange(2000)}" for _ in range(self.rng.randrange(4))]}
        return event

    def _record(self, event: dict, expected: str, text: str | None = None, raw: bytes | None = None) -> HostileRecord:
        """JSON text for `event` (or the given text / bytes) on the event's topic."""
        value = raw if raw is not None else (text if text is not None else json.dumps(event)).encode("utf-8")
        topic = "searches" if "query" in event else "clicks"
        return HostileRecord(topic, str(event.get("user_id", "")).encode("utf-8", "backslashreplace"), value,
                             expected, "")

    def _with_token(self, event: dict, field: str, token: str) -> str:
        """The event's JSON with `field` set to raw JSON text `token` (NaN, 1e400, escapes...)."""
        event = {**event, field: "\u0000SLOT"}
        return json.dumps(event).replace('"\\u0000SLOT"', token)

    def _field(self, event: dict, ids_only: bool = False) -> str:
        fields = [f for f in _IDS if f in event] + ([] if ids_only else ["tenant", "session_id"])
        return self.rng.choice(fields)

    # --- hostile classes: one builder each (run in name order) -------------------------------------

    def _h_action_unknown(self) -> HostileRecord:
        event = self._event("click")
        return self._record({**event, "action": self.rng.choice(["teleport", "VIEW", "view ", 3, ["view"]])},
                            "unknown_action")

    def _h_duplicate(self) -> HostileRecord:
        if not self._sent:
            return self._h_valid_odd()
        original = self.rng.choice(self._sent[-20:])     # within the user's duplicate window
        return HostileRecord(original.topic, original.key, original.value, "duplicate", "")

    def _h_id_control(self) -> HostileRecord:
        event = self._event()
        field = self._field(event)
        return self._record(event, "bad_text", text=self._with_token(event, field, f'"a{self.rng.choice(_CONTROLS)}b"'))

    def _h_id_invisible(self) -> HostileRecord:
        event = self._event()
        field = self._field(event)
        return self._record(event, "bad_text", text=self._with_token(event, field, f'"a{self.rng.choice(_INVISIBLE)}"'))

    def _h_id_surrogate(self) -> HostileRecord:
        event = self._event()
        field = self._field(event)
        return self._record(event, "bad_text", text=self._with_token(event, field, f'"{self.rng.choice(_SURROGATES)}"'))

    def _h_id_too_long(self) -> HostileRecord:
        event = self._event()
        field = self._field(event)
        value = self.rng.choice(["x" * (MAX_ID_CHARS + 1), "é" * 500]
                                + ([] if field == "tenant" else [10 ** (MAX_ID_CHARS + 5)]))
        return self._record({**event, field: value}, "too_long")

    def _h_id_wrong_type(self) -> HostileRecord:
        event = self._event()
        field = self._field(event)
        return self._record({**event, field: self.rng.choice([True, 1.5, {"id": 1}, [1, 2]])}, "wrong_type")

    def _h_missing_field(self) -> HostileRecord:
        event = self._event()
        field = self.rng.choice([f for f in (*_IDS, "ts", "query", "action") if f in event])
        return self._record(self.rng.choice([{k: v for k, v in event.items() if k != field}, {**event, field: ""},
                                             {**event, field: None}]), "missing_field")

    def _h_nesting(self) -> HostileRecord:
        event = self._event()
        depth = self.rng.choice([300, 1000, 5000])
        return self._record(event, "too_deep", text=self._with_token(event, "zz", "[" * depth + "]" * depth))

    def _h_no_value(self) -> HostileRecord:
        """A tombstone: Kafka lets any producer send a record with a null value."""
        event = self._event()
        return HostileRecord(self._record(event, "no_value").topic, event["user_id"].encode(), None, "no_value", "")

    def _h_not_json(self) -> HostileRecord:
        event = self._event()
        text = json.dumps(event)
        return self._record(event, "not_json", text=self.rng.choice([
            text[:-3], text + "}", text.replace('"', "'"), "\ufeff" + text, text + " // comment"]))

    def _h_not_object(self) -> HostileRecord:
        event = self._event()
        return self._record(event, "not_object", text=self.rng.choice([json.dumps([event]), '"event"', "42", "null"]))

    def _h_not_utf8(self) -> HostileRecord:
        event = self._event()
        text = json.dumps(event)
        return self._record(event, "not_utf8", raw=self.rng.choice([
            text.replace('"hu', '"\udcff').encode("utf-8", "surrogateescape"),         # a lone \xff byte
            text.replace('"hu', '"\ud800').encode("utf-8", "surrogatepass"),           # a surrogate as CESU-8
            text.encode().replace(b'"hu', b'"\xc0\xaf'),                               # an overlong "/"
            text.encode("utf-16")]))

    def _h_oversized(self) -> HostileRecord:
        event = self._event()
        return self._record({**event, "padding": "x" * (MAX_EVENT_BYTES + 10)}, "oversized")

    def _h_price_not_finite(self) -> HostileRecord:
        event = self._event("click")
        token = self.rng.choice(["NaN", "Infinity", "-Infinity", "1e400"])
        return self._record(event, "not_finite", text=self._with_token(event, "price", token))

    def _h_price_out_of_range(self) -> HostileRecord:
        event = self._event("click")
        return self._record({**event, "price": self.rng.choice([1e300, 1e10, -0.01, 10**30])}, "price_out_of_range")

    def _h_query_bad(self) -> HostileRecord:
        event = self._event("search")
        choice = self.rng.randrange(3)
        if choice == 0:
            return self._record(event, "bad_text", text=self._with_token(event, "query", '"red \\u0000 lamp"'))
        if choice == 1:
            return self._record({**event, "query": "q" * (MAX_QUERY_CHARS + 1)}, "too_long")
        return self._record(event, "bad_text", text=self._with_token(event, "query", '"\\udfff"'))

    def _h_results_bad(self) -> HostileRecord:
        event = self._event("search")
        return self.rng.choice([
            lambda: self._record({**event, "results": ["i1"] * (MAX_RESULTS + 1)}, "too_long"),
            lambda: self._record({**event, "results": [["i1"]]}, "wrong_type"),
            lambda: self._record(event, "bad_text", text=self._with_token(event, "results", '["i1", "\\ud800"]'))])()

    def _h_tenant_unknown(self) -> HostileRecord:
        event = self._event()
        if self.unknown_tenant is None:
            return self._record(event, "valid")
        return self._record({**event, "tenant": self.unknown_tenant}, "unknown_tenant")

    def _h_ts_not_finite(self) -> HostileRecord:
        event = self._event()
        token = self.rng.choice(["NaN", "-Infinity", "1e999"])
        return self._record(event, "not_finite", text=self._with_token(event, "ts", token))

    def _h_ts_out_of_range(self) -> HostileRecord:
        event = self._event()
        ts = self.rng.choice([0, -1, 1e12, 10**30, self.now + 86400, self.now - 8 * 86400, None])
        if ts is None:       # past Python's 4,300 digits: still JSON, still a number out of range
            return self._record(event, "ts_out_of_range", text=self._with_token(event, "ts", "1" + "0" * 5000))
        return self._record({**event, "ts": ts}, "ts_out_of_range")

    def _h_ts_wrong_type(self) -> HostileRecord:
        event = self._event()
        ts = self.rng.choice(["yesterday", str(self.now), [self.now], True])
        return self._record({**event, "ts": ts}, "wrong_type")

    def _h_valid_odd(self) -> HostileRecord:
        """Valid, but not what the generator sends: must be accepted, not dead-lettered."""
        event = self._event()
        field = self._field(event, ids_only=True)
        choice = self.rng.randrange(5)
        if choice == 0:
            odd = {**event, field: f"{event[field]}-{self.rng.choice(_ODD_VALID_TEXT)}"}
            return self._record(odd, "valid", text=json.dumps(odd, ensure_ascii=self.rng.random() < 0.5))
        if choice == 1:
            ints = {"event_id": 10**12 + self._seq, "session_id": self.rng.randrange(10**9)}
            return self._record({**event, **ints}, "valid")
        if choice == 2:
            return self._record({**event, "zz_unknown": {"nested": [1, [2, [3]]]}, "tenant": ""}
                                | ({"price": 7} if "item_id" in event else {}), "valid")
        if choice == 3:   # the same user id under the other tenant: a different user
            other = [t for t in self.tenants if t != event["tenant"]] or self.tenants
            return self._record({**event, "tenant": self.rng.choice(other)}, "valid")
        return self._record(event, "valid", text=json.dumps(event).replace('"event_id"', '"event\\u005fid"'))


def sink_poison(seed: int = 17, now: float | None = None) -> list[tuple[str, bytes, str]]:
    """(topic, value, expected dead-letter reason) for messages put straight on the cost
    sink's topics: what no worker sends, but anyone who can produce to them can."""
    rng = random.Random(seed)
    now = time.time() if now is None else now
    cost = {"event_id": "", "kind": "workload", "ts": now, "worker": "mallory", "device": "cpu",
            "price_sheet_version": "v1",
            "usage": {"wall_seconds": 0.01, "device_seconds": 0.0, "cpu_seconds": 0.01, "bytes_in": 10,
                      "bytes_out": 10, "state_bytes": 10, "clickhouse_bytes": 0, "ram_gb": 2.0},
            "lines": [{"tenant": "acme", "model_version": "v", "event_type": "click", "events": 1,
                       "recommendations": 1, "share": 1.0, "latencies_ms": [1.0],
                       "cost": {"compute": "0.1", "storage": "0", "people": "0", "ops": "0", "total": "0.1"}}]}
    rec = {"user_id": "u1", "items": ["i1"], "scores": [1.0], "model_version": "v", "trigger_event_id": "",
           "trigger_ts": now, "latency_ms": 1.0, "ts": now, "tenant": "acme"}

    def costs(**changes: object) -> bytes:
        event = json.loads(json.dumps(cost))
        event["event_id"] = f"poison-{rng.randrange(10**12)}"
        for path, value in changes.items():
            target, *path_ = event, *path.split(".")
            for name in path_[:-1]:
                target = target[int(name)] if isinstance(target, list) else target[name]
            target[path_[-1]] = value
        return json.dumps(event).encode()

    def recs(**changes: object) -> bytes:
        return json.dumps({**rec, "trigger_event_id": f"poison-{rng.randrange(10**12)}", **changes}).encode()

    return [
        ("cost-events", costs(**{"usage.cpu_seconds": float("nan")}), "sink_rows_failed"),
        ("cost-events", costs(**{"lines": "all of them"}), "sink_rows_failed"),
        ("cost-events", costs(**{"ts": 1e300}), "sink_rows_failed"),
        ("cost-events", costs(event_id="b-\ud800"), "sink_rows_failed"),
        ("cost-events", b"\x00\x01 not json", "sink_rows_failed"),
        ("cost-events", costs(**{"lines.0.cost.total": "1e30"}), "sink_insert_failed"),
        ("cost-events", costs(**{"lines.0.events": 2**70}), "sink_insert_failed"),
        ("recommendations", recs(user_id="\udc00"), "sink_rows_failed"),
        ("recommendations", recs(latency_ms=float("inf")), "sink_rows_failed"),
        ("recommendations", recs(items="i1"), "sink_rows_failed"),
        ("recommendations", recs(ts=float("nan")), "sink_rows_failed"),
    ]


def fuzz_values(seed: int, n: int, now: float | None = None) -> Iterator[bytes]:
    """n record values of random bytes or random JSON objects of contract field names with
    values of every JSON type (the `fuzz` scenario: no expectation beyond accounting)."""
    rng = random.Random(seed)
    now = time.time() if now is None else now
    names = ["event_id", "user_id", "item_id", "action", "ts", "query", "results", "tenant", "price", "session_id"]
    scalars: list[Callable[[], object]] = [
        lambda: None, lambda: rng.random() < 0.5, lambda: rng.randrange(-10**6, 10**6), lambda: rng.uniform(-1e9, 1e9),
        lambda: now, lambda: "".join(chr(rng.randrange(0x110000)) for _ in range(rng.randrange(12))),
        lambda: rng.choice(["view", "cart", "purchase", "u1", "i1", "red lamp", ""]), lambda: float("nan")]
    for _ in range(n):
        if rng.random() < 0.2:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
            continue
        doc = {rng.choice(names): rng.choice(scalars)() for _ in range(rng.randrange(8))}
        yield json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
