"""The worker's web port: where it binds, how it is named, whether it is free, how it errs, how
many connections it holds."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

from reckon.streams.core.errors import SettingsError
from reckon.streams.core.settings import Settings

WILDCARDS = ("0.0.0.0", "::")


def web_host(settings: Settings) -> str:
    """The host Faust's URLs name: the bind address, or this host's name when bound to all."""
    return socket.gethostname() if settings.web_bind in WILDCARDS else settings.web_bind


def local_url(settings: Settings) -> str:
    """Where a process on this machine reaches the web port."""
    host = "127.0.0.1" if settings.web_bind in WILDCARDS else settings.web_bind
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.web_port}"


def undecodable_url(request: Any) -> str | None:
    """Why the request's path and query cannot name a tenant or user, or None: a percent-escape
    of bytes that are not UTF-8 (`%FF`), which the router reads as the three characters `%FF`
    (the user of `%25FF`) and the query as U+FFFD."""
    try:
        unquote_to_bytes(request.raw_path).decode("utf-8")
    except UnicodeDecodeError:
        return "the URL's percent-escapes are not UTF-8 (a literal % is %25)"
    return None


def check_bindable(settings: Settings) -> None:
    """Bind the web port once before Faust does: a port in use is one line, not a traceback."""
    family = socket.AF_INET6 if ":" in settings.web_bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as aiohttp binds
        try:
            sock.bind((settings.web_bind, settings.web_port))
        except OSError as exc:
            raise SettingsError("RECKON_WEB_PORT", f"cannot bind {settings.web_bind}:{settings.web_port} "
                                f"({exc.strerror or exc}; RECKON_WEB_BIND / RECKON_WEB_PORT)") from None


class CappedRunner(web.AppRunner):
    """aiohttp's AppRunner whose sites hold at most `max_connections` connections at once: one
    past it is answered 503 and closed at once, before its request is read. aiohttp has no such
    cap, and each held connection is a socket and a file descriptor. Connections are counted as
    aiohttp registers them, so one burst of simultaneous connects can pass the cap by what the
    listening socket's backlog holds (128) before the next is refused."""

    def __init__(self, app: web.Application, max_connections: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.max_connections = max_connections

    @property
    def server(self) -> Callable[[], asyncio.BaseProtocol] | None:   # a site's protocol factory
        inner = super().server
        if inner is None:
            return None
        return lambda: _Busy() if len(inner.connections) >= self.max_connections else inner()


_BUSY = json.dumps({"error": "too many connections to this worker's web port; try again"},
                   separators=(",", ":")).encode()


class _Busy(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:    # an asyncio.Transport, which writes
        transport.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY))
        transport.close()


@web.middleware
async def json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
    """aiohttp's own 4xx (an unknown path, a method a page does not take) as JSON, as every
    page answers: a client reads `error` whichever answered."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        headers = {k: v for k, v in exc.headers.items() if k not in ("Content-Type", "Content-Length")}
        return web.json_response({"error": exc.reason}, status=exc.status, headers=headers, dumps=_compact)


def _compact(value: object) -> str:
    """JSON as the pages write it (no spaces after separators)."""
    return json.dumps(value, separators=(",", ":"))
