"""Per-(tenant, user) state: its bounds and its key. A user holds its recent items, query
terms, purchases, counters and the ids of its last events (the duplicate window), each
bounded; one idle for longer than `RECKON_USER_TTL_S` starts over. The layout and the fold
are streams/pipeline/user_table.py's.
"""

from __future__ import annotations

MAX_ITEMS = 50
MAX_TERMS = 16
MAX_SEEN = 64        # duplicate window: a user's last 64 event ids
MAX_BOUGHT = 20


KEY_SEP = "\x1f"     # the contract refuses controls in ids, so no tenant or user id holds it


def state_key(tenant: str, user: str) -> bytes:
    """A user's state key (RocksDB and the changelog): a user id is unique only within its
    tenant. Strict UTF-8: an id that cannot be encoded fails here, before any state changes."""
    return f"{tenant}{KEY_SEP}{user}".encode()
