"""Reach Kafka before any client does, so a wrong address, a closed port or an untrusted
certificate is one line naming the cause, not a client's retry loop or traceback."""

from __future__ import annotations

import socket
import ssl
import struct

from reckon.streams.core.errors import BrokerError


def check_reachable(bootstrap: str, ssl_context: ssl.SSLContext | None, timeout_s: float = 5.0) -> None:
    """Connect (and, with `ssl_context`, complete a TLS handshake) to the bootstrap servers
    until one answers; BrokerError saying why for each otherwise."""
    problems = []
    for address in (a.strip() for a in bootstrap.split(",") if a.strip()):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as sock:
                if ssl_context is None:
                    problem = _not_kafka(sock)
                else:
                    with ssl_context.wrap_socket(sock, server_hostname=host.strip("[]")) as tls:
                        problem = _not_kafka(tls)
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
    return None
