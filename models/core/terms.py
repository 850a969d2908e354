"""Query terms -> hashed bucket ids (the hashing trick), shared by training and serving."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable

__all__ = ["hash_terms", "tokenize"]

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(query: str) -> list[str]:
    """Lower-cased alphanumeric tokens of a search query."""
    return _TOKEN.findall(query.lower())


def hash_terms(terms: Iterable[str], buckets: int) -> list[int]:
    """Stable (crc32) bucket ids in 1..buckets; 0 is reserved for padding.

    Terms are lower-cased here too, so "Shoes" and "shoes" share a bucket.
    Returns [] when buckets == 0 (a model without query conditioning).
    """
    if buckets <= 0:
        return []
    return [zlib.crc32(t.lower().encode("utf-8")) % buckets + 1 for t in terms]
