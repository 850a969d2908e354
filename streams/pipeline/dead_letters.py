"""Dead letters: a record that could not be processed, where it came from, which stage
refused it and why. Written to `events-dlq` with the record's own key and raw bytes, so
nothing accepted from Kafka is lost: a fixed bug can replay them. A key or value past what
any event can be (the contract refuses events over 16 KiB as `oversized`) is cut to its
first bytes, and a `cut` header says so: a whole 1 MiB record did not fit the producer's
request limit, and a dead letter that cannot be sent stops the worker on every restart. The
`topic`, `partition` and `offset` headers find the whole record in its source topic.

Every reason belongs to one stage. The contract's reasons (streams/pipeline/contracts.py)
are decided before anything else sees the record; the others name a later stage where
the record alone failed, the rest of its batch going on:

    contract     the event contract, or the parser itself failing (`parse_failed`)
    state        the user's state: key, read, fold (`state_failed`)
    score        building its model row or scoring it (`score_failed`)
    publish      encoding its recommendation (`publish_failed`)
    sink_rows    a message the cost sink cannot turn into rows (`sink_rows_failed`)
    sink_insert  rows ClickHouse refuses on their own (`sink_insert_failed`)
"""

from __future__ import annotations

from dataclasses import dataclass

from reckon.streams.pipeline.contracts import REASONS

STAGES: dict[str, str] = {**dict.fromkeys(REASONS, "contract"), "parse_failed": "contract",
                          "state_failed": "state", "score_failed": "score", "publish_failed": "publish",
                          "sink_rows_failed": "sink_rows", "sink_insert_failed": "sink_insert"}
MAX_DETAIL_CHARS = 300
MAX_VALUE_BYTES = 64 * 1024    # 4 x the contract's largest event: only a record refused as oversized is cut
MAX_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    reason: str             # a key of STAGES
    detail: str

    @property
    def stage(self) -> str:
        return STAGES[self.reason]

    def headers(self) -> list[tuple[str, bytes]]:
        # Details may quote hostile input (an exception's message): never fail to encode them.
        return [(name, str(value).encode("utf-8", "backslashreplace")) for name, value in (
            ("reason", self.reason), ("stage", self.stage), ("detail", self.detail[:MAX_DETAIL_CHARS]),
            ("topic", self.topic), ("partition", self.partition), ("offset", self.offset))]

    def sendable(self) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
        """Key, value and headers to produce: an oversized key or value cut (see above)."""
        key, value, cuts = self.key, self.value, []
        if key is not None and len(key) > MAX_KEY_BYTES:
            cuts.append(f"key: first {MAX_KEY_BYTES} of {len(key)} bytes")
            key = key[:MAX_KEY_BYTES]
        if value is not None and len(value) > MAX_VALUE_BYTES:
            cuts.append(f"value: first {MAX_VALUE_BYTES} of {len(value)} bytes")
            value = value[:MAX_VALUE_BYTES]
        return key, value, self.headers() + ([("cut", "; ".join(cuts).encode())] if cuts else [])


def failure(exc: BaseException) -> str:
    """An exception as a dead letter's detail: its type and first line, bounded."""
    text = str(exc).split("\n", 1)[0]
    return f"{type(exc).__name__}: {text}"[:MAX_DETAIL_CHARS]
