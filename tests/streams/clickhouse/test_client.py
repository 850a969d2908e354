"""The ClickHouse wrapper at its edges: an unreachable server, a store held by another process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reckon.streams.clickhouse import client as client_module
from reckon.streams.clickhouse.client import ClickHouse, store_holder
from reckon.streams.core.errors import ClickHouseUnavailable, ReckonError, SettingsError, StoreLockedError
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
    port = free_port()
    with pytest.raises(ClickHouseUnavailable) as err:
        ClickHouse(f"http://default:secret@127.0.0.1:{port}/reckon?send_receive_timeout=5")
    # which server and the system's reason, not urllib3's retry wrapper around it
    assert str(err.value) == f"cannot reach ClickHouse at http://127.0.0.1:{port}: Connection refused"
    with pytest.raises(SettingsError, match="^setting RECKON_CLICKHOUSE_DSN: its parameter 'colour' is not"):
        ClickHouse(f"http://default:secret@127.0.0.1:{port}/reckon?colour=1")


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


@pytest.mark.parametrize(("scheme", "port"), [("https", 0), ("http", 8443)])
def test_the_dsns_scheme_decides_tls_not_its_port(monkeypatch: pytest.MonkeyPatch, scheme: str, port: int) -> None:
    """clickhouse-connect chose TLS by port (443, 8443): https:// on any other port went out in
    plain HTTP, password included. Whatever the port, https:// opens with a TLS ClientHello
    and http:// with a plain request."""
    monkeypatch.setattr(client_module, "HANDSHAKE_TIMEOUT_S", 1)
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("127.0.0.1", port))
        except OSError:
            pytest.skip(f"port {port} is taken on this machine")
        server.listen()
        first: list[bytes] = []

        def capture() -> None:
            conn, _ = server.accept()
            with conn:
                first.append(conn.recv(16))
                time.sleep(2)

        reader = threading.Thread(target=capture, daemon=True)
        reader.start()
        with pytest.raises(ClickHouseUnavailable):
            ClickHouse(f"{scheme}://reckon:hunter2@127.0.0.1:{server.getsockname()[1]}/reckon")
        reader.join(5)
    assert first, "nothing connected"
    if scheme == "https":
        assert first[0][:1] == b"\x16" and b"hunter2" not in first[0]        # a TLS handshake record
    else:
        assert first[0].split(b" ")[0] in (b"GET", b"POST")


def test_an_untrusted_certificate_says_how_to_trust_it_and_ca_cert_does(tmp_path: Path) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer() -> None:       # TLS, then an HTTP error ClickHouse would never give
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:     # the test is over and closed the socket
                    return
                try:
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(4096)
                        tls.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\nnope!")
                except (ssl.SSLError, OSError):
                    conn.close()

        threading.Thread(target=answer, daemon=True).start()
        url = f"https://reckon:pw@127.0.0.1:{server.getsockname()[1]}/reckon"
        with pytest.raises(ClickHouseUnavailable, match=r"not trusted: add \?ca_cert="):
            ClickHouse(url)
        with pytest.raises(ReckonError) as trusted:           # past TLS: the server's own answer
            ClickHouse(f"{url}?ca_cert={tmp_path / 'ca.pem'}")
        assert "nope!" in str(trusted.value) and "not trusted" not in str(trusted.value)


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


def test_a_certificate_file_the_dsn_names_must_exist() -> None:
    """It failed as 'cannot reach ClickHouse: ... SSLError(FileNotFoundError(2, ...))', naming no file."""
    with pytest.raises(SettingsError, match=r"^setting RECKON_CLICKHOUSE_DSN: ca_cert=/nonexistent\.pem: no such file$"):
        ClickHouse(f"https://u:p@127.0.0.1:{free_port()}/reckon?ca_cert=/nonexistent.pem")
