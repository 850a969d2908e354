"""Who may use the worker's pages with user or tenant data (`/state`, `/costs`,
`/recommendations`, `/events`), and those over every tenant (`/retrain`, `/metrics`).

Off unless configured: with no token set those pages are open to whoever reaches the web
port (bound to loopback by default). With tokens, a request needs `Authorization: Bearer
<token>`: `RECKON_WEB_TOKEN` reads every tenant, a `RECKON_WEB_TENANT_TOKENS` entry only
its own tenant. Tokens are compared in constant time, every one of them on each request.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from reckon.streams.core.settings import Settings


@dataclass(frozen=True)
class Scope:
    tenant: str | None          # None: every tenant

    def allows(self, tenant: str | None) -> bool:
        """Whether this scope may read `tenant` (None: a page over every tenant)."""
        return self.tenant is None or self.tenant == tenant


class PageAuth:
    def __init__(self, settings: Settings) -> None:
        every = settings.web_token.get_secret_value()
        self._tokens: list[tuple[bytes, Scope]] = [(every.encode(), Scope(None))] if every else []
        self._tokens += [(token.get_secret_value().encode(), Scope(tenant))
                         for tenant, token in sorted(settings.web_tenant_tokens.items())]

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def scope(self, authorization: str | None) -> Scope | None:
        """The scope a request's Authorization header grants; None for a missing, malformed
        or unknown token (answer 401). Everything is in scope when no token is configured."""
        if not self._tokens:
            return Scope(None)
        kind, _, presented = (authorization or "").partition(" ")
        if kind.lower() != "bearer" or not presented:
            return None
        given = presented.strip().encode("utf-8", "surrogateescape")
        granted = None
        for token, scope in self._tokens:
            if hmac.compare_digest(token, given) and granted is None:
                granted = scope
        return granted


def unauthorized(web: Any) -> Any:
    """The answer to a request without a valid token (401, with the Bearer challenge)."""
    # Missing and unknown alike (which one is no business of a caller without a token); the
    # CLI's --url commands send RECKON_WEB_TOKEN, so the hint names it.
    return web.json({"error": "a valid bearer token is required: Authorization: Bearer <RECKON_WEB_TOKEN, "
                              "or the tenant's token in RECKON_WEB_TENANT_TOKENS>"}, status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="reckon"'})


def every_tenant_refusal(auth: PageAuth, web: Any, request: Any, what: str) -> Any | None:
    """None when the request may use a page over every tenant (`what` names it); else the
    answer: 401 without a valid token, 403 for a tenant's token."""
    scope = auth.scope(request.headers.get("Authorization"))
    if scope is None:
        return unauthorized(web)
    if scope.tenant is not None:
        return web.json({"error": f"{what} covers every tenant: a tenant's token may not use it"}, status=403)
    return None
