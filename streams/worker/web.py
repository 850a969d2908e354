"""The worker's web port: where it binds, how it is named, whether it is free, how it errs."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable

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
