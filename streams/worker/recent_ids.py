"""Event ids `POST /events` accepted lately, so that a resend is answered `duplicate` and
not produced again.

An id is claimed before its event is produced and kept only once the broker has it: a
failed send releases the claim, so a retry is produced, never wrongly called a duplicate.
Bounded: the oldest ids go first, and ids are per worker (the worker's own duplicate
detection by event id still drops a resend that another worker produced).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class RecentIds:
    def __init__(self, max_ids: int) -> None:
        if max_ids < 1:
            raise ValueError(f"max_ids must be at least 1, not {max_ids}")
        self.max_ids = max_ids
        self._accepted: OrderedDict[Hashable, None] = OrderedDict()
        self._pending: set[Hashable] = set()

    def __len__(self) -> int:
        return len(self._accepted)

    def claim(self, event_id: Hashable) -> bool:
        """True: the caller may produce the event; False: it was accepted lately or is being produced."""
        if event_id in self._accepted or event_id in self._pending:
            return False
        self._pending.add(event_id)
        return True

    def confirm(self, event_id: Hashable) -> None:
        """The claimed event is with the broker: a resend is a duplicate from now on."""
        self._pending.discard(event_id)
        self._accepted[event_id] = None
        if len(self._accepted) > self.max_ids:
            self._accepted.popitem(last=False)

    def release(self, event_id: Hashable) -> None:
        """Producing the claimed event failed: a resend may try again."""
        self._pending.discard(event_id)
