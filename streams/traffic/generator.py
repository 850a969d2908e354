"""Synthetic but realistic traffic: Zipf item popularity, sessions with item-to-item
transitions, category-linked search queries, an optional share of malformed events, and
optional drift: from a given event on, popularity shifts and new items appear.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

WORDS = ("red blue black white green running trail leather wool linen phone case laptop stand "
         "desk lamp coffee grinder kettle mug tent stove lantern yoga mat bottle").split()
BAD_KINDS = ("not_json", "not_object", "missing_field", "wrong_type", "unknown_action",
             "ts_out_of_range", "oversized")


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    valid: bool
    reason: str = ""      # expected dead-letter reason when not valid


@dataclass(frozen=True)
class Drift:
    """From event `at` on (counting every event generated), `new_items` items appear after
    the catalog's (ids items .. items + new_items - 1, in the same categories and transitions)
    and popularity changes: the new items take every other rank of the head, between the old
    items, whose order is rotated by `shift` ranks (yesterday's best sellers sink)."""

    at: int
    new_items: int = 200
    shift: int = 500

    def __post_init__(self) -> None:
        if self.at < 0 or self.new_items < 0 or self.shift < 0:
            raise ValueError("drift at, new_items and shift must be >= 0")

    def ranking(self, items: int) -> list[int]:
        """Item ids by popularity rank after the drift (most popular first)."""
        old = list(range(items))
        old = old[self.shift % items:] + old[:self.shift % items] if items else old
        new = list(range(items, items + self.new_items))
        head = [item for pair in zip(new, old) for item in pair]
        return head + new[len(head) // 2:] + old[len(head) // 2:]


@dataclass(frozen=True)
class Catalog:
    items: int = 2000
    categories: int = 40
    seed: int = 7

    def category(self, item: int) -> int:
        return item % self.categories

    def words(self, category: int) -> list[str]:
        rng = random.Random(self.seed * 1000 + category)
        return rng.sample(WORDS, 2)


class TrafficGenerator:
    """Yields events in the wire contract; deterministic for a seed."""

    def __init__(self, users: int = 500, catalog: Catalog = Catalog(), bad_fraction: float = 0.0,
                 search_fraction: float = 0.15, tenants: tuple[str, ...] = ("acme", "globex"),
                 seed: int = 1, start_ts: float | None = None, drift: Drift | None = None,
                 id_prefix: str = "") -> None:
        if not 0 <= bad_fraction < 1:
            raise ValueError("bad_fraction must be in [0, 1)")
        self.rng = random.Random(seed)
        self.users = users
        self.catalog = catalog
        self.bad_fraction = bad_fraction
        self.search_fraction = search_fraction
        self.tenants = tenants
        # Start an hour back: ~0.025 s per event leaves room for ~150k events before "now".
        self.ts = time.time() - 3600 if start_ts is None else start_ts
        self._seq = 0
        self.id_prefix = id_prefix      # event ids' (a replay's run, apart from earlier runs of one seed)
        self.drift = drift
        self.drifted = False
        self._items = catalog.items                      # the catalog in use (grows at the drift)
        self._ranked = range(catalog.items)              # item ids by popularity rank
        self._popular = self._zipf_weights(catalog.items)

    @staticmethod
    def _zipf_weights(n: int, s: float = 1.1) -> list[float]:
        return [1.0 / (rank ** s) for rank in range(1, n + 1)]

    def _maybe_drift(self) -> None:
        if self.drift is None or self.drifted or self._seq < self.drift.at:
            return
        self.drifted = True
        self._ranked = self.drift.ranking(self.catalog.items)
        self._items = len(self._ranked)
        self._popular = self._zipf_weights(self._items)

    def _item(self) -> int:
        return self.rng.choices(self._ranked, weights=self._popular)[0]

    def _next_item(self, current: int) -> int:
        if self.rng.random() < 0.6:  # browse within the category, near the current item
            step = self.rng.choice((-2, -1, 1, 2)) * self.catalog.categories
            return (current + step) % self._items
        return self._item()

    def _event_id(self) -> str:
        self._seq += 1
        return f"{self.id_prefix}e{self._seq:09d}"

    def sessions(self) -> Iterator[dict]:
        """An endless stream of events, a session at a time."""
        while True:
            self._maybe_drift()
            user = self.rng.randrange(self.users)
            tenant = self.tenants[user % len(self.tenants)]
            session = f"s{self.rng.getrandbits(40):x}"
            item = self._item()
            base = {"user_id": f"u{user}", "session_id": session, "tenant": tenant}
            if self.rng.random() < self.search_fraction * 3:
                words = self.catalog.words(self.catalog.category(item))
                self.ts += self.rng.random() * 0.05
                yield {**base, "event_id": self._event_id(), "ts": round(self.ts, 3),
                       "query": " ".join(words), "results": [f"i{item}", f"i{self._next_item(item)}"]}
            for _ in range(self.rng.randint(2, 8)):
                self.ts += self.rng.random() * 0.05
                roll = self.rng.random()
                action = "purchase" if roll < 0.03 else "cart" if roll < 0.12 else "view"
                yield {**base, "event_id": self._event_id(), "ts": round(self.ts, 3),
                       "item_id": f"i{item}", "action": action,
                       "price": round(5 + (item % 97) * 1.5, 2)}
                item = self._next_item(item)

    def records(self, n: int) -> Iterator[Record]:
        """n records: valid events, plus malformed ones at `bad_fraction`."""
        events = self.sessions()
        for _ in range(n):
            if self.bad_fraction and self.rng.random() < self.bad_fraction:
                yield self._malformed(next(events))
                continue
            event = next(events)
            topic = "searches" if "query" in event else "clicks"
            yield Record(topic, event["user_id"].encode(), json.dumps(event).encode(), True)

    def _malformed(self, event: dict) -> Record:
        kind = self.rng.choice(BAD_KINDS)
        topic = "searches" if "query" in event else "clicks"
        key = event["user_id"].encode()
        if kind == "not_json":
            value = b'{"event_id": "broken' + event["event_id"].encode()
        elif kind == "not_object":
            value = json.dumps([event["event_id"]]).encode()
        elif kind == "missing_field":
            value = json.dumps({k: v for k, v in event.items() if k != "user_id"}).encode()
        elif kind == "wrong_type":
            value = json.dumps({**event, "ts": "yesterday"}).encode()
        elif kind == "unknown_action":
            topic = "clicks"
            value = json.dumps({**event, "item_id": "i1", "action": "teleport"}).encode()
        elif kind == "ts_out_of_range":
            value = json.dumps({**event, "ts": 86400.0}).encode()
        else:
            value = json.dumps({**event, "padding": "x" * 20_000}).encode()
        return Record(topic, key, value, False, kind)
