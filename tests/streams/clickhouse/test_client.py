"""The ClickHouse wrapper at its edges: an unreachable server, a store held by another process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reckon.streams.clickhouse import client as client_module
from reckon.streams.clickhouse.client import ClickHouse, store_holder
from reckon.streams.core.errors import ClickHouseUnavailable, ReckonError, StoreLockedError
from reckon.streams.core.settings import Settings
from reckon.streams.kafka.broker import free_port
from reckon.streams.reports.report import ReportRequest

HOLD = """
import sys, time
from reckon.streams.clickhouse.client import connect
ch = connect(sys.argv[1])
ch.advertise(sys.argv[2])
print("ready", flush=True)
time.sleep(60)
"""


def test_a_server_that_is_not_there_is_unavailable_not_a_crash() -> None:
    with pytest.raises(ClickHouseUnavailable, match="cannot reach ClickHouse") as err:
        ClickHouse(f"http://default:secret@127.0.0.1:{free_port()}")
    assert "secret" not in str(err.value)


def test_a_port_that_never_answers_is_unavailable_in_seconds_not_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A DSN naming a port that takes the connection and says nothing (not ClickHouse's HTTP
    port) waited out the 300 s read timeout; the connection's first queries get a short one."""
    monkeypatch.setattr(client_module, "HANDSHAKE_TIMEOUT_S", 1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(ClickHouseUnavailable, match="is this ClickHouse's HTTP port"):
            ClickHouse(f"http://127.0.0.1:{silent.getsockname()[1]}")
        assert time.monotonic() - started < 30


@pytest.mark.integration
def test_a_held_store_names_its_holder_and_where_it_answers(tmp_path: Path) -> None:
    from reckon.streams.cli.costs import fetch_report

    store = tmp_path / "store"
    url = f"http://127.0.0.1:{free_port()}"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, f"chdb://{store}", url], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        owner = store_holder(store)
        assert owner is not None and owner["pid"] == holder.pid and owner["url"] == url
        with pytest.raises(StoreLockedError) as err:
            ClickHouse(f"chdb://{store}")
        assert f"pid {holder.pid}" in str(err.value) and f"{url}/costs" in str(err.value)
        settings = Settings(clickhouse_dsn=f"chdb://{store}")
        # `reckon costs` goes to the holder's endpoint (nothing listens there in this test).
        with pytest.raises(ReckonError, match=f"cannot reach {url}/costs"):
            fetch_report(settings, ReportRequest())
        with pytest.raises(StoreLockedError, match=f"pid {holder.pid}"):
            fetch_report(settings, ReportRequest(), load_prices=Path(__file__))
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 5
    while store_holder(store) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store_holder(store) is None                      # a dead holder holds nothing
    assert json.loads((store / ".reckon-owner").read_text())["pid"] == holder.pid


def test_storage_refusing_writes_is_an_outage_to_retry_not_a_bug() -> None:
    from reckon.streams.clickhouse.client import _is_unavailable

    assert _is_unavailable(RuntimeError("Code: 1001. ... Cannot open file ... Read-only file system"))
    assert _is_unavailable(RuntimeError("Code: 243. DB::Exception: NOT_ENOUGH_SPACE"))
    assert not _is_unavailable(RuntimeError("Code: 62. DB::Exception: Syntax error"))
