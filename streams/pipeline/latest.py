"""The latest recommendation of each (tenant, user) this worker published, for reading on
request (`GET /recommendations/{user}`).

Values are the recommendation as published (its JSON bytes): a read answers them as they
are, and the batch that publishes pays one dictionary write per recommendation, no
encoding. Bounded in users and, where given, in bytes (keys and values): the least
recently published users go first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping


class LatestRecommendations:
    def __init__(self, max_users: int, max_bytes: int | None = None) -> None:
        if max_users < 1:
            raise ValueError(f"max_users must be at least 1, not {max_users}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
        self.max_users = max_users
        self.max_bytes = max_bytes
        self.bytes = 0              # keys and values held
        self._values: OrderedDict[bytes, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: bytes) -> bytes | None:
        """The latest recommendation under a state key (streams/pipeline/state.py), or None."""
        return self._values.get(key)

    def update(self, published: Mapping[bytes, bytes]) -> None:
        """A batch's recommendations (state key -> value) replace those users' earlier ones."""
        values = self._values
        held = self.bytes
        for key, value in published.items():
            old = values.get(key)
            held += (len(value) - len(old)) if old is not None else (len(key) + len(value))
            values[key] = value
            values.move_to_end(key)
        max_bytes = held if self.max_bytes is None else self.max_bytes
        # the least recently published go first; the newest stays, whatever its size
        while len(values) > self.max_users or (held > max_bytes and len(values) > 1):
            key, value = values.popitem(last=False)
            held -= len(key) + len(value)
        self.bytes = held
