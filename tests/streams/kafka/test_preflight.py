"""The Kafka preflight's SASL check against a fake listener that speaks the protocol's
frames (the embedded broker has no SASL): what it sends, and how it reads each answer."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from reckon.streams.core.errors import BrokerError
from reckon.streams.kafka.preflight import check_reachable


def _frames(conn: socket.socket):
    """(api key, version, correlation id, body) of each request on `conn`."""
    while True:
        head = conn.recv(4, socket.MSG_WAITALL)
        if len(head) < 4:
            return
        (size,) = struct.unpack(">i", head)
        data = conn.recv(size, socket.MSG_WAITALL)
        key, version, correlation, client_len = struct.unpack(">hhih", data[:10])
        yield key, version, correlation, data[10 + client_len:]


def _answer(conn: socket.socket, correlation: int, body: bytes) -> None:
    conn.sendall(struct.pack(">ii", 4 + len(body), correlation) + body)


def _listener(mechanisms: list[str], password: str, seen: list) -> int:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        with conn, server:
            for key, version, correlation, body in _frames(conn):
                seen.append((key, version))
                if key == 18:        # ApiVersions: no versions listed, error 0
                    _answer(conn, correlation, struct.pack(">hi", 0, 0))
                elif key == 17:      # SaslHandshake v1
                    (length,) = struct.unpack(">h", body[:2])
                    error = 0 if body[2:2 + length].decode() in mechanisms else 33
                    names = b"".join(struct.pack(">h", len(m)) + m.encode() for m in mechanisms)
                    _answer(conn, correlation, struct.pack(">hi", error, len(mechanisms)) + names)
                elif key == 36:      # SaslAuthenticate v0: PLAIN's token is \0user\0password
                    (length,) = struct.unpack(">i", body[:4])
                    _, user, given = body[4:4 + length].split(b"\0")
                    error = 0 if given.decode() == password else 58
                    _answer(conn, correlation, struct.pack(">hhi", error, -1, 0))

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


@pytest.mark.parametrize(("mechanisms", "sasl", "says"), [
    (["PLAIN"], ("PLAIN", "u", "right"), None),
    (["PLAIN"], ("PLAIN", "u", "wrong"), "SASL PLAIN authentication of user 'u' failed"),
    (["SCRAM-SHA-512"], ("SCRAM-SHA-512", "u", "any"), None),        # SCRAM's exchange is the clients'
    (["SCRAM-SHA-256"], ("PLAIN", "u", "right"),
     r"the broker does not offer SASL mechanism PLAIN \(it offers: SCRAM-SHA-256\)"),
])
def test_the_sasl_check(mechanisms: list[str], sasl: tuple[str, str, str], says: str | None) -> None:
    seen: list = []
    port = _listener(mechanisms, "right", seen)
    if says is None:
        check_reachable(f"127.0.0.1:{port}", None, sasl=sasl)
    else:
        with pytest.raises(BrokerError, match=says) as err:
            check_reachable(f"127.0.0.1:{port}", None, sasl=sasl)
        assert "right" not in str(err.value) and "wrong" not in str(err.value)
    assert seen[:2] == [(18, 0), (17, 1)] and ((36, 0) in seen) == (sasl[0] == "PLAIN" and sasl[0] in mechanisms)
