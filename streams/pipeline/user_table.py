"""Users' states as columns: the compact layout of per-(tenant, user) state.

A state of dicts and lists is ~10-130 scattered objects per user, and with one event per
user per batch (live traffic) every event paid the cache and TLB misses of walking them
(bench/INGEST.md). Here a user is a row (slot) of a few arrays: item, bought and seen-id
rings, query terms, counters. Names (items, terms) are interned to int32 codes shared by
all users; event ids are kept as 64-bit hashes (`id_hashes`). A batch is folded for all
its users at once with array operations (`fold_batch`), in event order per user:
duplicates (an id among the user's last MAX_SEEN, or earlier in the batch) dropped, an
idle user started over, lists kept to their newest MAX_* (streams/pipeline/state.py).

Rings: `count` is how many values a list ever received (since its last reset); value k
sits at k % capacity, so the list is the last min(count, capacity) of them.

Stored form (`gather(rows).encode()` / `decode`): version 2 is a fixed header, the seen hashes, then
the names joined by a separator the contract refuses in ids and queries. Version 1, the
JSON dict earlier versions stored, is still read, so states written before migrate as they
change.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np

from reckon.streams.pipeline.arrays import Vocab, grown, run_starts
from reckon.streams.pipeline.state import MAX_BOUGHT, MAX_ITEMS, MAX_SEEN, MAX_TERMS

VERSION = 2
_HEADER = struct.Struct("<BqqddBBBB")   # version, clicks, searches, last_seen, last_rec_ts, list lengths
_HEADER_DTYPE = np.dtype([("version", "u1"), ("clicks", "<i8"), ("searches", "<i8"), ("last_seen", "<f8"),
                          ("last_rec_ts", "<f8"), ("items", "u1"), ("terms", "u1"), ("seen", "u1"), ("bought", "u1")])
_NAME_SEP = "\x1f"                      # a control: refused in ids and queries by the contract
# The contract refuses lone surrogates too; if one got past it, its state is still stored
# and read back as it was, rather than failing the commit of every state with it.
_ANY_TEXT = "surrogatepass"
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_decode_v1 = msgspec.json.Decoder().decode
# name, width (None: one value per row), dtype: a row of each is a user
_COLUMNS = (("items", MAX_ITEMS, np.int32), ("bought", MAX_BOUGHT, np.int32), ("seen", MAX_SEEN, np.uint64),
            ("terms", MAX_TERMS, np.int32), ("n_items", None, np.int64), ("n_bought", None, np.int64),
            ("n_seen", None, np.int64), ("n_terms", None, np.int64), ("clicks", None, np.int64),
            ("searches", None, np.int64), ("last_seen", None, np.float64), ("last_rec_ts", None, np.float64))


def id_hashes(ids: Sequence[str]) -> np.ndarray:
    """64-bit hashes of ids (uint64), the same in every process and batch: FNV-1a over the
    code points, then a splitmix64 finaliser. Ids hold no NUL (the contract refuses
    controls), so the zero padding of a batch's widest id is skipped exactly."""
    if not ids:
        return np.zeros(0, dtype=np.uint64)
    codes = np.array(ids, dtype=np.str_)
    columns = codes.view(np.uint32).reshape(len(ids), -1).astype(np.uint64)
    h = np.full(len(ids), _FNV_OFFSET, dtype=np.uint64)
    for column in columns.T:
        h = np.where(column != 0, (h ^ column) * _FNV_PRIME, h)
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


class Names(Vocab):
    """A vocabulary whose names are also held as an object array with their UTF-8 sizes,
    code-indexed, to encode rows a column at a time; both grow with the vocabulary."""

    def __init__(self) -> None:
        super().__init__()
        self.kept = 0                           # names held at the last compaction
        self._arrays(fresh=True)

    def _arrays(self, fresh: bool = False) -> None:
        if fresh:
            self._named, self._sizes, self._have = np.full(1, "", dtype=object), np.zeros(1, dtype=np.int64), 0

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(names, their UTF-8 sizes), code-indexed, "" and 0 past the last: an unused slot
        of a ring is never read, but its stale code must index something."""
        n = len(self.names)
        if self._have < n:
            new = self.names[self._have:]
            self._named, self._sizes = grown(self._named, n + 1, ""), grown(self._sizes, n + 1, 0)
            self._named[self._have:n] = new
            self._sizes[self._have:n] = [len(name.encode("utf-8", _ANY_TEXT)) for name in new]
            self._have = n
        return self._named, self._sizes

    def compact(self, live: np.ndarray) -> np.ndarray:
        remap = super().compact(live)
        self.kept = len(self.names)
        self._arrays(fresh=True)
        return remap


class UserTable:
    """Rows of user state, grown as needed; a row is reused once freed (`free`)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.items_names = Names()
        self.term_names = Names()
        self.used = 0                  # rows handed out so far (free ones among them are in `_free`)
        self._free: list[int] = []
        capacity = max(capacity, 1)
        for name, width, dtype in _COLUMNS:
            setattr(self, name, np.zeros((capacity,) if width is None else (capacity, width), dtype=dtype))

    @property
    def capacity(self) -> int:
        return len(self.items)

    def new_rows(self, count: int) -> np.ndarray:
        """`count` empty rows."""
        reused = [self._free.pop() for _ in range(min(count, len(self._free)))]
        fresh = count - len(reused)
        if self.used + fresh > self.capacity:
            for name, _, _ in _COLUMNS:
                setattr(self, name, grown(getattr(self, name), self.used + fresh, 0))
        rows = np.r_[np.array(reused, dtype=np.int64), np.arange(self.used, self.used + fresh, dtype=np.int64)]
        self.used += fresh
        self.reset(rows)
        return rows

    def free(self, rows: Sequence[int]) -> None:
        self._free.extend(rows)

    def reset(self, rows: np.ndarray) -> None:
        """Rows start over (an idle user, a reused row)."""
        for counts in (self.n_items, self.n_bought, self.n_seen, self.n_terms, self.clicks, self.searches):
            counts[rows] = 0
        self.last_seen[rows] = 0.0
        self.last_rec_ts[rows] = 0.0

    def compact_names(self, floor: int = 1_000_000) -> None:
        """Forget names no row holds, once a table has interned more than `floor` and twice
        what its rows held at the last compaction: item ids come from outside, and a stream of
        ever-new ones must not grow memory without bound. Call between batches."""
        for names, rings in ((self.items_names, (self.items, self.bought)), (self.term_names, (self.terms,))):
            if len(names) <= max(floor, 2 * names.kept):
                continue
            live = np.zeros(len(names), dtype=bool)
            for ring in rings:
                live[ring[:self.used]] = True        # stale slots too: their codes stay valid
            remap = names.compact(live)
            for ring in rings:
                ring[:self.used] = remap[ring[:self.used]]

    # --- a batch ---

    def fold_batch(self, rows: np.ndarray, hashes: np.ndarray, ts: np.ndarray, items: np.ndarray,
                   purchase: np.ndarray, searches: dict[int, list[str]], ttl: float) -> np.ndarray:
        """Fold a batch's valid events, in order: per event its user's row, id hash, ts, item
        code (-1: a search) and whether it is a purchase; `searches`: event position -> its
        query terms. A user whose first event of the batch is more than `ttl` after its
        last_seen starts over. Returns which events were new (not duplicates)."""
        n = len(rows)
        if not n:
            return np.zeros(0, dtype=bool)
        order = np.argsort(rows, kind="stable")
        by_row = rows[order]
        starts = run_starts(by_row)
        firsts = order[starts]                       # each user's first event of the batch
        users = rows[firsts]
        stale = ts[firsts] - self.last_seen[users] > ttl
        if stale.any():
            self.reset(users[stale])
        # duplicates: among the user's last MAX_SEEN ids, or earlier in the batch
        held = np.minimum(self.n_seen[rows], MAX_SEEN)
        width = int(held.max())                      # a ring fills from slot 0: compare only that wide
        dup = (self.seen[rows, :width] == hashes[:, None])
        dup[np.arange(width) >= held[:, None]] = False
        dup = dup.any(axis=1)
        if len(starts) < n:                          # a user with several events: repeats among them
            keyed = hashes ^ (rows.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
            same = np.argsort(keyed, kind="stable")
            repeated = np.flatnonzero(keyed[same][1:] == keyed[same][:-1]) + 1
            dup[same[repeated]] = True
        fresh = ~dup
        kept = order[fresh[order]] if dup.any() else order   # new events, by row, in order within a row
        if not len(kept):
            return fresh
        kept_rows = rows[kept]
        self._append(self.seen, self.n_seen, MAX_SEEN, kept_rows, hashes[kept])
        is_click = items[kept] >= 0
        clicks = kept[is_click]
        if len(clicks):
            click_rows = rows[clicks]
            counted = self._append(self.items, self.n_items, MAX_ITEMS, click_rows, items[clicks])
            self.clicks[counted[0]] += counted[1]
            bought = clicks[purchase[clicks]]
            if len(bought):
                self._append(self.bought, self.n_bought, MAX_BOUGHT, rows[bought], items[bought])
        if len(clicks) < len(kept):
            asked = kept[~is_click]
            counted = np.unique(rows[asked], return_counts=True)
            self.searches[counted[0]] += counted[1]
            for position in np.sort(asked).tolist():
                self._fold_terms(int(rows[position]), searches[position])
        bounds = run_starts(kept_rows)
        newest = np.maximum.reduceat(ts[kept], bounds)
        users = kept_rows[bounds]
        self.last_seen[users] = np.maximum(self.last_seen[users], newest)
        return fresh

    @staticmethod
    def _append(ring: np.ndarray, count: np.ndarray, size: int, rows: np.ndarray,
                values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append values to rows' rings; `rows` grouped, each row's values in order.
        Returns (each row, how many it got)."""
        starts = run_starts(rows)
        firsts = rows[starts]
        if len(starts) == len(rows):                 # one value per row: live traffic's batch
            ring[rows, count[rows] % size] = values
            count[rows] += 1
            return rows, np.ones(len(rows), dtype=np.int64)
        lengths = np.diff(np.r_[starts, len(rows)])
        rank = np.arange(len(rows)) - np.repeat(starts, lengths)
        last = rank >= np.repeat(lengths - size, lengths)      # only a row's newest `size` land
        held, rank = rows[last], rank[last]
        ring[held, (count[held] + rank) % size] = values[last]
        count[firsts] += lengths
        return firsts, lengths

    def _fold_terms(self, row: int, new: list[str]) -> None:
        """A search's terms go last; earlier copies of them leave."""
        codes = self.term_names.encode(new).tolist()
        held = self.terms[row, :self.n_terms[row]].tolist()
        terms = ([t for t in held if t not in codes] + codes)[-MAX_TERMS:]
        self.terms[row, :len(terms)] = terms
        self.n_terms[row] = len(terms)

    # --- a row as values ---

    def state(self, row: int, seen_hashes: bool = False) -> dict:
        """The row in the dict shape scoring reads: items, terms, bought (names, oldest
        first), counters; `seen` the number of ids held, or (`seen_hashes`, for pages) their
        hashes as 16 hex digits, oldest first: the ids themselves are not kept."""
        rows = np.array([row], dtype=np.int64)
        state = self.states(rows)[0]
        if seen_hashes:
            seen, held = _ordered(self.seen, self.n_seen, MAX_SEEN, rows)
            state["seen"] = [f"{h:016x}" for h in seen[0, :held[0]].tolist()]
        return state

    def states(self, rows: np.ndarray) -> list[dict]:
        """`state(row)` for many rows (a batch's), their rings gathered in one pass."""
        if not len(rows):
            return []
        item_names = self.items_names.arrays()[0]
        term_names = self.term_names.arrays()[0]
        items, n_items = _ordered(self.items, self.n_items, MAX_ITEMS, rows)
        bought, n_bought = _ordered(self.bought, self.n_bought, MAX_BOUGHT, rows)
        n_terms = self.n_terms[rows]
        terms = self.terms[rows, :int(n_terms.max())]
        return [{"items": i[:ni], "terms": t[:nt], "seen": int(ns), "bought": b[:nb], "clicks": c, "searches": q,
                 "last_seen": ls, "last_rec_ts": lr}
                for i, ni, t, nt, b, nb, ns, c, q, ls, lr in zip(
                    item_names[items].tolist(), n_items.tolist(), term_names[terms].tolist(), n_terms.tolist(),
                    item_names[bought].tolist(), n_bought.tolist(), np.minimum(self.n_seen[rows], MAX_SEEN).tolist(),
                    self.clicks[rows].tolist(), self.searches[rows].tolist(), self.last_seen[rows].tolist(),
                    self.last_rec_ts[rows].tolist())]

    def latest_items(self, rows: np.ndarray, k: int) -> list[list[str]]:
        """Each row's last `k` items (names, oldest first)."""
        if not len(rows):
            return []
        items, held = _ordered(self.items, self.n_items, MAX_ITEMS, rows)
        names = self.items_names.arrays()[0][items].tolist()
        return [row[max(n - k, 0):n] for row, n in zip(names, held.tolist())]

    def gather(self, rows: np.ndarray) -> Gathered:
        """Copies of what the rows' stored forms hold, to encode later: array copies only,
        so a commit takes them quickly while batches wait, and encodes after they resume.
        Later batches, and names compaction, leave the copies as they are."""
        items, n_items = _ordered(self.items, self.n_items, MAX_ITEMS, rows)
        bought, n_bought = _ordered(self.bought, self.n_bought, MAX_BOUGHT, rows)
        seen, n_seen = _ordered(self.seen, self.n_seen, MAX_SEEN, rows)
        n_terms = self.n_terms[rows]
        header = np.empty(len(rows), dtype=_HEADER_DTYPE)
        header["version"] = VERSION
        header["clicks"], header["searches"] = self.clicks[rows], self.searches[rows]
        header["last_seen"], header["last_rec_ts"] = self.last_seen[rows], self.last_rec_ts[rows]
        header["items"], header["terms"], header["seen"], header["bought"] = n_items, n_terms, n_seen, n_bought
        # a ring's codes as they are now: compaction later makes new name arrays, never edits these
        return Gathered(header, seen, [(items, n_items, self.items_names.arrays()),
                                       (self.terms[rows, :int(n_terms.max(initial=0))], n_terms, self.term_names.arrays()),
                                       (bought, n_bought, self.items_names.arrays())])

    def decode(self, row: int, raw: bytes) -> None:
        """A stored state (version 2, or version 1's JSON) into `row`. Raises ValueError on
        a value that is neither."""
        if raw[:1] == b"{":
            state = _decode_v1(raw)
            items, terms, bought = state["items"], state["terms"], state["bought"]
            seen = id_hashes([str(s) for s in state["seen"]])
            head = (int(state["clicks"]), int(state["searches"]), float(state["last_seen"]),
                    float(state.get("last_rec_ts", 0.0)))
        else:
            if len(raw) < _HEADER.size or raw[0] != VERSION:
                raise ValueError(f"stored state of an unknown format (first byte {raw[:1]!r})")
            version, clicks, searches, last_seen, last_rec_ts, n_items, n_terms, n_seen, n_bought = \
                _HEADER.unpack_from(raw)
            end = _HEADER.size + 8 * n_seen
            seen = np.frombuffer(raw[_HEADER.size:end], dtype="<u8").astype(np.uint64)
            names = raw[end:].decode("utf-8", _ANY_TEXT).split(_NAME_SEP) if n_items + n_terms + n_bought else []
            if len(names) != n_items + n_terms + n_bought or len(seen) != n_seen:
                raise ValueError("stored state is truncated")
            items, terms, bought = names[:n_items], names[n_items:n_items + n_terms], names[n_items + n_terms:]
            head = (clicks, searches, last_seen, last_rec_ts)
        items, terms, bought, seen = items[-MAX_ITEMS:], terms[-MAX_TERMS:], bought[-MAX_BOUGHT:], seen[-MAX_SEEN:]
        self.items[row, :len(items)] = self.items_names.encode(items)
        self.bought[row, :len(bought)] = self.items_names.encode(bought)
        self.terms[row, :len(terms)] = self.term_names.encode(terms)
        self.seen[row, :len(seen)] = seen
        self.n_items[row], self.n_bought[row], self.n_terms[row], self.n_seen[row] = \
            len(items), len(bought), len(terms), len(seen)
        self.clicks[row], self.searches[row], self.last_seen[row], self.last_rec_ts[row] = head


@dataclass
class Gathered:
    """Rows' stored forms, not yet encoded (`UserTable.gather`): headers, seen hashes, and
    per name list (items, terms, bought) its codes, how many each row holds, and the
    (names, UTF-8 sizes) arrays the codes index."""
    header: np.ndarray
    seen: np.ndarray
    lists: list[tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]]

    def encode(self) -> list[bytes]:
        """One value per row: its header and seen hashes, one slice of a buffer built for all
        rows, then its names, one slice of all rows' names joined (a separator between
        rows too, skipped). Per row, only the two slices joined run in Python."""
        n = len(self.header)
        if not n:
            return []
        # each row's names in order (items, terms, bought), as one flat list for all rows
        valid = [np.arange(codes.shape[1]) < held[:, None] for codes, held, _ in self.lists]
        where = np.hstack([np.broadcast_to(np.int8(k), v.shape) for k, v in enumerate(valid)])[np.hstack(valid)]
        flat_codes = np.hstack([codes for codes, _, _ in self.lists])[np.hstack(valid)]
        names = np.empty(len(flat_codes), dtype=object)
        sizes = np.empty(len(flat_codes), dtype=np.int64)
        for k, (_, _, (named, name_sizes)) in enumerate(self.lists):
            mine = where == k
            names[mine] = named.take(flat_codes[mine])
            sizes[mine] = name_sizes.take(flat_codes[mine])
        counts = sum(v.sum(axis=1) for v in valid)
        text = _NAME_SEP.join(names.tolist()).encode("utf-8", _ANY_TEXT)
        ends = np.cumsum(sizes + 1)                  # past each name's separator
        last = np.cumsum(counts) - 1                 # each row's last name
        lengths = np.where(counts > 0, ends[last] - 1 - np.r_[0, ends][last + 1 - counts], 0)
        starts = np.where(counts > 0, np.r_[0, ends][last + 1 - counts], 0)
        width = _HEADER.size + 8 * self.seen.shape[1]
        prefix = np.empty((n, width), dtype=np.uint8)
        prefix[:, :_HEADER.size] = self.header.view(np.uint8).reshape(n, _HEADER.size)
        prefix[:, _HEADER.size:] = self.seen.astype("<u8", copy=False).view(np.uint8).reshape(n, -1)
        prefix = memoryview(prefix.reshape(-1))
        text = memoryview(text)
        held = _HEADER.size + 8 * self.header["seen"].astype(np.int64)
        join = b"".join
        return [join((prefix[at:at + size], text[start:start + length]))
                for at, size, start, length in zip(range(0, n * width, width), held.tolist(), starts.tolist(),
                                                   lengths.tolist())]


def _ordered(ring: np.ndarray, count: np.ndarray, size: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows' rings oldest first, as wide as the fullest of them, and how many each holds."""
    total = count[rows]
    held = np.minimum(total, size)
    if not len(rows) or total.max() <= size:            # none has wrapped: already in order
        return ring[rows, :int(held.max(initial=0))], held
    at = (total[:, None] - held[:, None] + np.arange(size)) % size
    return np.take_along_axis(ring[rows], at, axis=1), held
