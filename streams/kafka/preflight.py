"""Reach Kafka before any client does, so a wrong address, a closed port or an untrusted
certificate is one line naming the cause, not a client's retry loop or traceback."""

from __future__ import annotations

import socket
import ssl

from reckon.streams.core.errors import BrokerError


def check_reachable(bootstrap: str, ssl_context: ssl.SSLContext | None, timeout_s: float = 5.0) -> None:
    """Connect (and, with `ssl_context`, complete a TLS handshake) to the bootstrap servers
    until one answers; BrokerError saying why for each otherwise."""
    problems = []
    for address in (a.strip() for a in bootstrap.split(",") if a.strip()):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as sock:
                if ssl_context is not None:
                    with ssl_context.wrap_socket(sock, server_hostname=host.strip("[]")):
                        pass
            return
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
