"""The latest recommendation of each (tenant, user) this worker published, for reading on
request (`GET /recommendations/{user}`).

Values are the recommendation as published (its JSON bytes): a read answers them as they
are, and the batch that publishes pays one dictionary write per recommendation, no
encoding. Bounded: the least recently published users go first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping


class LatestRecommendations:
    def __init__(self, max_users: int) -> None:
        if max_users < 1:
            raise ValueError(f"max_users must be at least 1, not {max_users}")
        self.max_users = max_users
        self._values: OrderedDict[bytes, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: bytes) -> bytes | None:
        """The latest recommendation under a state key (streams/pipeline/state.py), or None."""
        return self._values.get(key)

    def update(self, published: Mapping[bytes, bytes]) -> None:
        """A batch's recommendations (state key -> value) replace those users' earlier ones."""
        values = self._values
        for key, value in published.items():
            values[key] = value
            values.move_to_end(key)
        for _ in range(len(values) - self.max_users):
            values.popitem(last=False)
