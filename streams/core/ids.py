"""What an id or tenant may be, everywhere one is read: the event contract's limit."""

from __future__ import annotations

MAX_ID_CHARS = 128      # event, user, item and session ids, tenants


def printable_id(text: str) -> bool:
    """1..MAX_ID_CHARS printable characters (no control, no lone surrogate): what the contract takes."""
    return 0 < len(text) <= MAX_ID_CHARS and text.isprintable()
