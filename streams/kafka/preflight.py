"""Reach Kafka before any client does, so a wrong address, a closed port or an untrusted
certificate is one line naming the cause, not a client's retry loop or traceback."""

from __future__ import annotations

import socket
import ssl
import struct

from reckon.streams.core.errors import BrokerError


Sasl = tuple[str, str, str]         # mechanism, user name, password


def check_reachable(bootstrap: str, ssl_context: ssl.SSLContext | None, timeout_s: float = 5.0,
                    sasl: Sasl | None = None) -> None:
    """Connect (and, with `ssl_context`, complete a TLS handshake) to the bootstrap servers
    until one answers, and with `sasl` check the broker offers the mechanism (and, for PLAIN,
    takes the credentials); BrokerError saying why for each otherwise."""
    problems = []
    for address in (a.strip() for a in bootstrap.split(",") if a.strip()):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as sock:
                if ssl_context is None:
                    problem = _not_kafka(sock) or (sasl and _sasl_refused(sock, *sasl))
                else:
                    with ssl_context.wrap_socket(sock, server_hostname=host.strip("[]")) as tls:
                        problem = _not_kafka(tls) or (sasl and _sasl_refused(tls, *sasl))
            if problem is None:
                return
            problems.append(f"{address}: {problem}")
        except ssl.SSLCertVerificationError as exc:
            problems.append(f"{address}: TLS certificate not trusted ({exc.verify_message}); "
                            "check RECKON_KAFKA_SSL_CAFILE")
        except ssl.SSLError as exc:
            problems.append(f"{address}: TLS handshake failed ({exc.reason}); "
                            "does the listener speak RECKON_KAFKA_SECURITY_PROTOCOL?")
        except ValueError:
            problems.append(f"{address}: not host:port")
        except OSError as exc:
            problems.append(f"{address}: {exc.strerror or exc}")
    raise BrokerError("cannot reach Kafka at RECKON_BOOTSTRAP_SERVERS: " + "; ".join(problems or ["none given"]))


# ApiVersions v0 (api key 18) from client "reckon": every Kafka broker answers it before
# authentication, with a frame that echoes the request's correlation id.
_CORRELATION = 0x52434B4E
_REQUEST = struct.pack(">hhih", 18, 0, _CORRELATION, 6) + b"reckon"
_API_VERSIONS = struct.pack(">i", len(_REQUEST)) + _REQUEST


def _not_kafka(sock: socket.socket) -> str | None:
    """None when the peer answers a Kafka ApiVersions request; else what it did instead (an
    HTTP server, ClickHouse's port, ... accept the connection, then fail every client call)."""
    sock.sendall(_API_VERSIONS)
    head = b""
    while len(head) < 8:
        try:
            chunk = sock.recv(8 - len(head))
        except TimeoutError:
            return f"no Kafka answer within {sock.gettimeout():g} s: is this a Kafka listener?"
        if not chunk:
            return "closed the connection without a Kafka answer: is this a Kafka listener?"
        head += chunk
    size, correlation = struct.unpack(">ii", head)
    if correlation != _CORRELATION or not 6 <= size <= 1 << 20:
        return f"answered, but not as Kafka does (it began {head[:8]!r}): is this a Kafka listener?"
    _read(sock, size - 4)          # the rest of the answer: the connection is used again for SASL
    return None


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def _call(sock: socket.socket, api_key: int, version: int, body: bytes) -> bytes:
    """One request (header v1, client "reckon") and its answer's body."""
    request = struct.pack(">hhih", api_key, version, _CORRELATION, 6) + b"reckon" + body
    sock.sendall(struct.pack(">i", len(request)) + request)
    size, correlation = struct.unpack(">ii", _read(sock, 8))
    if correlation != _CORRELATION:
        raise ConnectionError("the broker answered another request")
    return _read(sock, size - 4)


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def _sasl_refused(sock: socket.socket, mechanism: str, user: str, password: str) -> str | None:
    """None when the broker offers `mechanism` (and, for PLAIN, accepts the user and password:
    SCRAM takes a multi-step exchange the clients do); else why, in one line."""
    try:
        answer = _call(sock, 17, 1, _string(mechanism))                 # SaslHandshake v1
        error, count = struct.unpack(">hi", answer[:6])
        offered, at = [], 6
        for _ in range(max(count, 0)):
            (length,) = struct.unpack(">h", answer[at:at + 2])
            offered.append(answer[at + 2:at + 2 + length].decode(errors="replace"))
            at += 2 + length
        if error and mechanism not in offered:
            return (f"the broker does not offer SASL mechanism {mechanism} (it offers: "
                    f"{', '.join(offered) or 'none'}); check RECKON_KAFKA_SASL_MECHANISM")
        if error:               # it names the mechanism yet refuses it: no SASL on this listener
            return (f"the broker refused a SASL {mechanism} handshake (Kafka error {error}): is SASL enabled "
                    "on this listener? check RECKON_KAFKA_SECURITY_PROTOCOL")
        if mechanism != "PLAIN":
            return None
        token = b"\0" + user.encode() + b"\0" + password.encode()
        answer = _call(sock, 36, 0, struct.pack(">i", len(token)) + token)  # SaslAuthenticate v0
        (error,) = struct.unpack(">h", answer[:2])
        if error:
            return f"SASL PLAIN authentication of user {user!r} failed; check RECKON_KAFKA_SASL_USERNAME and _PASSWORD"
    except (ConnectionError, struct.error, TimeoutError) as exc:
        return f"SASL handshake failed ({exc or type(exc).__name__}); does the listener speak " \
               "RECKON_KAFKA_SECURITY_PROTOCOL?"
    return None
