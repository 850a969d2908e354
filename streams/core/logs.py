"""Logging for every command: one handler on stderr, text or JSON lines, secrets masked.

RECKON_LOG_LEVEL sets Reckon's own loggers; the libraries under it (Faust, mode, aiokafka,
kafka-python) are chatty at INFO, so they log WARNING and above unless the level is DEBUG.
The ClickHouse client's errors reach the user translated (streams/clickhouse/client.py), so
its own warnings about the same failure are left out unless the level is DEBUG. A client's
malformed request or dropped connection is the client's doing: aiohttp's ERROR with a
traceback for it becomes one INFO line (anyone who can reach the port could fill the log).
A library repeating one message (a broker that is gone) is said once per 30 s, with a count.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import IO

from pythonjsonlogger.json import JsonFormatter

from reckon.streams.core.redact import redact

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
LIBRARIES = ("faust", "mode", "aiokafka", "kafka", "httpx")
TRANSLATED = ("clickhouse_connect", "urllib3")


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then masks secrets in the whole line (message and traceback)."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record), self.secrets)


def formatter(fmt: str, secrets: Iterable[str] = ()) -> logging.Formatter:
    if fmt == "json":
        inner: logging.Formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
    else:
        inner = logging.Formatter(TEXT_FORMAT)
    return RedactingFormatter(inner, secrets)


class ClientFaults(logging.Filter):
    """aiohttp's "Error handling request" for a request it could not parse or a client that
    went away: one INFO line naming what was wrong, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import BadHttpMessage
        from aiohttp.web_protocol import RequestPayloadError

        exc = record.exc_info[1] if record.exc_info else None
        # RequestPayloadError: a body that is not what its headers say (gzip that is not), met
        # again when aiohttp drains it after the handler answered 400
        if isinstance(exc, (BadHttpMessage, ConnectionResetError, RequestPayloadError)):
            what = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            said = (record.getMessage().replace("Error handling request", "refused a request")
                    .replace("Unhandled exception", "refused a request body"))
            record.msg, record.args = "%s: %s", (said, " ".join(str(what).split())[:200])
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return record.levelno >= logging.getLogger().getEffectiveLevel()


class Repeats(logging.Filter):
    """A library's message (by its template) at most once per `every_s` seconds; the next one
    says how many were left out. With its broker gone aiokafka logged "Unable connect to node"
    ~200 times a second, burying the one line that said what was wrong."""

    def __init__(self, every_s: float = 30.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._seen: dict[tuple[str, str], list] = {}     # (logger, template) -> [last emitted, left out since]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] not in LIBRARIES:
            return True
        key = (record.name, str(record.msg))
        seen = self._seen.get(key)
        if seen is not None and record.created - seen[0] < self.every_s:
            seen[1] += 1
            return False
        if len(self._seen) > 10_000:      # templates are few; ids pasted into messages are not
            self._seen.clear()
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} (and {seen[1]:,} more like it in the last {record.created - seen[0]:.0f} s)"
        self._seen[key] = [record.created, 0]
        return True


def quiet_translated() -> None:
    """Before any logging is configured (commands other than the worker): the libraries whose
    errors Reckon says in its own words log only errors, so their warning of the same failure
    is not printed as a second, raw line."""
    for name in TRANSLATED:
        logging.getLogger(name).setLevel(logging.ERROR)


def configure(level: str, fmt: str, secrets: Iterable[str] = (), stream: IO[str] | None = None) -> None:
    """Replace the root logger's handlers with one that writes `fmt` lines to `stream` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt, secrets))
    handler.addFilter(Repeats())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    debug = level == "DEBUG"
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else max(logging.WARNING, logging.getLevelName(level)))
    for name in TRANSLATED:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else max(logging.ERROR, logging.getLevelName(level)))
    server = logging.getLogger("aiohttp.server")
    server.filters[:] = [f for f in server.filters if not isinstance(f, ClientFaults)] + [ClientFaults()]
