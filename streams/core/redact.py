"""Masking secrets in anything printed: DSN passwords, `password=` pairs, known secret values."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# scheme://user:password@host -> scheme://user:***@host (any scheme: http, https, chdb, kafka...)
# Neither a quote nor a backslash is taken into a password: masking inside a JSON log line
# must not eat the escape of a quote.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s\"\\]*):([^@/\s\"\\]*)@")
_PASSWORD_PAIR = re.compile(r"(password\s*[=:]\s*)([^\s&,;'\"\\]+)", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every URL password, `password=...` value and listed secret replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(rf"\1:{MASK}@", text)
    return _PASSWORD_PAIR.sub(rf"\1{MASK}", text)
