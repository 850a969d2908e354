"""One ClickHouse wrapper for both chdb (embedded engine) and a server.

Every query is tagged, every value is bound as a typed parameter, only
unavailability is retryable, and an error caused by the values sent (ClickHouseDataError)
is told apart from one caused by ClickHouse, so a caller can set the rows aside. An
embedded chdb store can be open in one process at a time: the opener records itself in
an owner file so a second process can name it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import clickhouse_connect
from urllib3 import Timeout

from reckon.streams.core.errors import (ClickHouseDataError, ClickHouseError, ClickHouseUnavailable, SettingsError,
                                        StoreLockedError)
from reckon.streams.core.redact import redact

OWNER_FILE = ".reckon-owner"
# A port that takes the connection and never answers (not ClickHouse, or a hung one) would
# hold the first query for the read timeout: the connection's own queries get this long.
HANDSHAKE_TIMEOUT_S = 10
READ_TIMEOUT_S = 300      # clickhouse-connect's default, for every query after them
_clients: dict[str, "ClickHouse"] = {}
_lock = threading.Lock()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def store_holder(path: Path) -> dict | None:
    """Who holds an embedded store (from its owner file), or None if nobody alive does."""
    try:
        owner = json.loads((path / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    if owner.get("pid") == os.getpid() or not _pid_alive(int(owner.get("pid", 0))):
        return None
    return owner


class ClickHouse:
    """A thin, typed facade over a clickhouse-connect client."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.embedded = dsn.startswith("chdb://")
        self.store_path = Path(dsn.removeprefix("chdb://")) if self.embedded else None
        self._client = self._open()
        self._mutex = threading.Lock()  # chdb sessions are not safe for concurrent queries

    def _open(self) -> Any:
        if self.store_path is not None:
            holder = store_holder(self.store_path)
            if holder:
                raise StoreLockedError(str(self.store_path), _describe(holder))
            self.store_path.mkdir(parents=True, exist_ok=True)
            # Without the engine (the `embedded` extra) the catch-all below would blame a held store.
            import chdb  # noqa: F401
            try:
                client = clickhouse_connect.get_client(dsn=f"chdb://{self.store_path}")
            except Exception as exc:  # chdb raises plain RuntimeError on a held store
                raise StoreLockedError(str(self.store_path), "another process") from exc
            (self.store_path / OWNER_FILE).write_text(json.dumps(
                {"pid": os.getpid(), "argv": " ".join(sys.argv[:3]), "since": time.time()}))
            return client
        parts = urlsplit(self.dsn)
        own_timeout = "send_receive_timeout" in parts.query     # the DSN's choice stands
        for name, value in parse_qsl(parts.query):
            # ca_cert=certifi is clickhouse-connect's name for certifi's bundle
            if name in ("ca_cert", "client_cert", "client_cert_key") and value not in ("", "certifi") \
                    and not Path(value).is_file():
                raise SettingsError("RECKON_CLICKHOUSE_DSN", f"{name}={value[:200]}: no such file")
        try:
            # clickhouse-connect takes TLS from the port (443, 8443), not the DSN's scheme: an
            # https:// DSN on another port would send the password in the clear.
            client = clickhouse_connect.get_client(
                dsn=self.dsn, interface=parts.scheme, connect_timeout=5,
                **({} if own_timeout else {"send_receive_timeout": HANDSHAKE_TIMEOUT_S}))
        except TypeError as exc:         # the DSN's query string is passed on as keyword arguments
            unknown = re.search(r"unexpected keyword argument '([^']*)'", str(exc))
            if unknown is None:
                raise
            raise SettingsError("RECKON_CLICKHOUSE_DSN", f"its parameter {unknown.group(1)[:40]!r} is not "
                                "one clickhouse-connect's get_client takes") from None
        except Exception as exc:
            if _is_timeout(exc):
                reason = f"no answer within {HANDSHAKE_TIMEOUT_S} s (is this ClickHouse's HTTP port?)"
            elif "CERTIFICATE_VERIFY_FAILED" in str(exc):
                reason = ("the server's TLS certificate is not trusted: add ?ca_cert=/path/ca.pem to "
                          "RECKON_CLICKHOUSE_DSN")
            else:
                reason = _reason(exc)
            raise ClickHouseUnavailable(f"cannot reach ClickHouse at {_where(parts)}: {reason}") from exc
        if not own_timeout:
            client.timeout = Timeout(connect=5, read=READ_TIMEOUT_S)
        return client

    def _run(self, fn: Any, tag: str, *args: Any, **kwargs: Any) -> Any:
        settings = kwargs.pop("settings", None) or {}
        if not self.embedded:
            settings = {"log_comment": tag, **settings}
        try:
            with self._mutex:
                return fn(*args, settings=settings, **kwargs)
        except Exception as exc:
            if _is_unavailable(exc):
                raise ClickHouseUnavailable(f"[{tag}] ClickHouse unavailable: {_redact(exc)}") from exc
            if _is_data_error(exc):
                raise ClickHouseDataError(f"[{tag}] {_redact(exc)}") from exc
            raise ClickHouseError(f"[{tag}] {_redact(exc)}") from exc

    def command(self, sql: str, params: dict | None = None, tag: str = "command") -> Any:
        return self._run(self._client.command, tag, sql, parameters=params or {})

    def query(self, sql: str, params: dict | None = None, tag: str = "query") -> list[tuple]:
        return self._run(self._client.query, tag, sql, parameters=params or {}).result_rows

    def query_dicts(self, sql: str, params: dict | None = None, tag: str = "query") -> list[dict]:
        result = self._run(self._client.query, tag, sql, parameters=params or {})
        return [dict(zip(result.column_names, row)) for row in result.result_rows]

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str],
               tag: str = "insert") -> int:
        if rows:
            self._run(self._client.insert, tag, table, rows, column_names=list(columns))
        return len(rows)

    def advertise(self, url: str) -> None:
        """Record in the owner file where this process answers cost queries (GET {url}/costs),
        so `reckon costs` can go through the owner instead of failing on the held store."""
        if self.store_path is None:
            return
        owner = self.store_path / OWNER_FILE
        try:
            data = json.loads(owner.read_text())
        except (OSError, ValueError):
            return
        if data.get("pid") == os.getpid():
            tmp = owner.with_suffix(".tmp")
            tmp.write_text(json.dumps({**data, "url": url}))
            tmp.replace(owner)   # atomic: a reader never sees half a file

    def close(self) -> None:
        try:
            self._client.close()
        finally:
            if self.store_path is not None:
                owner = self.store_path / OWNER_FILE
                try:
                    if json.loads(owner.read_text()).get("pid") == os.getpid():
                        owner.unlink()
                except (OSError, ValueError):
                    pass


def connect(dsn: str) -> ClickHouse:
    """One client per DSN per process (an embedded store cannot be opened twice)."""
    with _lock:
        if dsn not in _clients:
            _clients[dsn] = ClickHouse(dsn)
        return _clients[dsn]


def disconnect(dsn: str) -> None:
    with _lock:
        client = _clients.pop(dsn, None)
    if client:
        client.close()


def _describe(holder: dict) -> str:
    where = f", serving {holder['url']}/costs" if holder.get("url") else ""
    return f"pid {holder.get('pid')} ({holder.get('argv', '?')}{where})"


# Storage that refuses writes for a while (disk full or read-only, too many parts) is an
# outage to retry soon, like a dropped connection, not a bug to stall on.
_TRANSIENT_STORAGE = ("Read-only file system", "No space left on device", "NOT_ENOUGH_SPACE",
                      "TOO_MANY_PARTS", "Code: 252", "Code: 243")


def _is_timeout(exc: Exception) -> bool:
    return isinstance(exc, TimeoutError) or "timed out" in str(exc).lower()


def _is_unavailable(exc: Exception) -> bool:
    from clickhouse_connect.driver.exceptions import OperationalError

    if isinstance(exc, (OperationalError, ConnectionError, TimeoutError)):
        return True
    text = str(exc)
    return any(marker in text for marker in _TRANSIENT_STORAGE)


# Server error codes that name the data, not the server: parse and conversion failures,
# values out of their type's range, arrays of unequal sizes.
_DATA_CODES = frozenset({6, 27, 38, 41, 53, 69, 70, 72, 117, 153, 190, 321, 407})


def _is_data_error(exc: Exception) -> bool:
    """Whether the values sent caused `exc`: clickhouse-connect could not serialize them
    (its DataError, or a Python conversion error), chdb could not take a bound parameter,
    or the server names a data error code."""
    from clickhouse_connect.driver.exceptions import DataError, Error

    if isinstance(exc, DataError):
        return True
    if not isinstance(exc, Error):   # raised while encoding the values, before anything was sent
        return isinstance(exc, (ValueError, TypeError, ArithmeticError))
    text = str(exc)
    if "Unable to cast Python instance" in text:
        return True
    code = re.search(r"Code: (\d+)\.", text)
    return code is not None and int(code.group(1)) in _DATA_CODES


def _where(parts: Any) -> str:
    """scheme://host:port of a DSN: which server, without its credentials or query."""
    try:
        port = parts.port
    except ValueError:             # a port that is not a number: the library said why
        port = None
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{port}" if port else "")


def _reason(exc: Exception) -> str:
    """What the connection attempt ran into, in the system's words ("Connection refused",
    "Name or service not known"), instead of urllib3's retry wrapper around them."""
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] ([^'\"()\]]+)", text)
    if errno:
        return errno.group(1).strip()
    return _redact(exc)


def _redact(exc: Exception) -> str:
    """The first line of an error, without any password a DSN or a driver put in it."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return redact(text)[:500]
