"""Produce events to Kafka: generated traffic, a JSONL file in the event contract, or a
session file (one session per line, item ids separated by spaces, e.g. Diginetica)."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from aiokafka import AIOKafkaProducer

from reckon.streams.core.errors import ReckonError
from reckon.streams.core.ids import MAX_ID_CHARS
from reckon.streams.traffic.generator import Record


def topic_for(doc: object) -> str:
    """The topic an event belongs on: `searches` when it has a `query`, else `clicks` (where
    the contract names whatever else is wrong with it)."""
    return "searches" if isinstance(doc, dict) and "query" in doc else "clicks"


MAX_LINE_BYTES = 512 * 1024   # far past any event (MAX_EVENT_BYTES), under the producer's 1 MB request
_BOM = b"\xef\xbb\xbf"        # editors put it before the first line; no event starts with it


# (topic, line) -> "" for an event the worker will take, else its dead-letter reason
Verdict = Callable[[str, bytes], str]


def _lines(path: Path, what: str) -> Iterator[tuple[int, bytes]]:
    """The file's lines, numbered from 1; a gzip file, known by its first bytes as `reckon train`
    knows it, is read through, and a cut or corrupt one named. A line over MAX_LINE_BYTES (/dev/zero,
    a binary file, a gzip bomb) stops the read before memory does: the file is not `what`."""
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as fh:
        try:
            for line_no, line in enumerate(iter(lambda: fh.readline(MAX_LINE_BYTES + 1), b""), 1):
                if len(line) > MAX_LINE_BYTES:
                    raise ReckonError(f"{path}:{line_no}: a line over {MAX_LINE_BYTES} bytes; is this {what}?")
                yield line_no, line
        except (OSError, EOFError) as exc:
            raise ReckonError(f"{path}: not a readable gzip file ({exc})") from None


def records_from_jsonl(path: Path, verdict: Verdict = lambda topic, raw: "") -> Iterator[Record]:
    """Each line is one event; `query` makes it a search, anything else goes to clicks.
    Lines are passed on as they are: the worker validates and dead-letters; `valid` is
    `verdict`'s (the CLI passes the contract's; this layer is below it)."""
    for line_no, raw in _lines(path, "a JSONL file of events"):
        raw = (raw.removeprefix(_BOM) if line_no == 1 else raw).strip()
        if not raw:
            continue
        try:
            doc = json.loads(raw)
        except ValueError:
            yield Record("clicks", b"", raw, False, "not_json")
            continue
        except RecursionError:
            yield Record("clicks", b"", raw, False, "too_deep")
            continue
        topic = topic_for(doc)
        # A key only picks the partition: the user id as the contract reads it (a string or
        # an integer); a hostile one (a lone surrogate, a nested value) must not stop the replay.
        user = doc.get("user_id") if isinstance(doc, dict) else None
        valid_type = isinstance(user, (str, int)) and not isinstance(user, bool)
        key = str(user).encode("utf-8", "backslashreplace") if valid_type else b""
        reason = verdict(topic, raw)
        yield Record(topic, key, raw, not reason, reason)


def records_from_sessions(path: Path, start_ts: float | None = None) -> Iterator[Record]:
    """Session format: a line is one anonymous session, so the session is the user."""
    ts = time.time() - 3600 if start_ts is None else start_ts
    for line_no, raw_line in _lines(path, "a sessions file"):
        try:
            items = raw_line.decode("utf-8").split()
        except UnicodeDecodeError:
            raise ReckonError(f"{path}:{line_no}: not UTF-8 text") from None
        if not all(i.isascii() and i.isdigit() and len(i) <= MAX_ID_CHARS for i in items):
            raise ReckonError(f"{path}:{line_no}: expected numeric item ids (at most {MAX_ID_CHARS} "
                              "digits) separated by spaces")
        for pos, item in enumerate(items):
            ts += 0.001
            event = {"event_id": f"s{line_no}-{pos}", "user_id": f"s{line_no}", "item_id": item,
                     "action": "view", "ts": round(ts, 3), "session_id": f"s{line_no}"}
            yield Record("clicks", event["user_id"].encode(), json.dumps(event).encode(), True)


async def produce(bootstrap: str, records: Iterable[Record], rate: float = 0.0,
                  client_kwargs: dict | None = None) -> Counter:
    """Send records (at `rate` events/s, or as fast as possible when 0); returns counts."""
    counts: Counter = Counter()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1,
                                max_batch_size=256 * 1024, **(client_kwargs or {}))
    await producer.start()
    try:
        started = time.perf_counter()
        pending = []
        for n, record in enumerate(records, 1):
            pending.append(await producer.send(record.topic, record.value, key=record.key or None))
            counts["sent"] += 1
            counts[f"topic:{record.topic}"] += 1
            counts["valid" if record.valid else f"invalid:{record.reason}"] += 1
            if rate and n % 100 == 0:
                ahead = n / rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    except ReckonError as exc:      # a file's bad line: what came before it is on its way (stop() flushes)
        raise ReckonError(f"{exc} (stopped there: the {counts['sent']:,} events before it were sent)") from None
    finally:
        await producer.stop()
    return counts


def produce_in_background(bootstrap: str, records: Iterable[Record], rate: float = 0.0) -> threading.Thread:
    """`produce` on its own thread and event loop, started; join() it to wait for the end."""
    thread = threading.Thread(target=lambda: asyncio.run(produce(bootstrap, records, rate=rate)), daemon=True)
    thread.start()
    return thread
