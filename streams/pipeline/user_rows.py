"""Which row of the user table holds which (tenant, user): loaded on first use, marked
dirty when a batch changes it, encoded by each commit's snapshot, and evicted least
recently used (never while dirty or being written). Storage is a callback: the worker's
is RocksDB (streams/kafka/user_store.py), a test's a dict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from reckon.streams.pipeline.arrays import grown
from reckon.streams.pipeline.dead_letters import failure
from reckon.streams.pipeline.state import state_key
from reckon.streams.pipeline.user_table import Gathered, UserTable

Load = Callable[[bytes, int | None], bytes | None]     # (state key, partition or None) -> stored value
Snapshot = dict[int, list[tuple[bytes, bytes]]]       # partition -> (key, encoded state), to write


class UserRows:
    def __init__(self, load: Load, max_rows: int = 50_000, names_floor: int = 1_000_000) -> None:
        self.table = UserTable()
        self.load = load
        self.max_rows = max_rows
        self.names_floor = names_floor        # names interned before the table forgets unheld ones
        self.row_of: dict[tuple[str, str], int] = {}
        self._user: dict[int, tuple[str, str]] = {}
        self._key: dict[int, bytes] = {}
        self.partition = np.zeros(0, dtype=np.int32)
        self.dirty = np.zeros(0, dtype=bool)
        self.writing = np.zeros(0, dtype=bool)
        self.stored_bytes = np.zeros(0, dtype=np.int64)   # as last written or read; 0: never stored
        self.touched = np.zeros(0, dtype=np.int64)        # the batch that last used the row
        self._tick = 0
        self._fit()

    def _fit(self) -> None:
        """The per-row arrays as long as the table (it grows as rows are handed out)."""
        for name in ("partition", "dirty", "writing", "stored_bytes", "touched"):
            setattr(self, name, grown(getattr(self, name), self.table.capacity, 0))

    def rows_of(self, users: Sequence[tuple[str, str]], partition_of: Callable[[int], int | None]
                ) -> tuple[np.ndarray, dict[int, str]]:
        """Each event's user's row (`users`: one per event), a state read from storage the
        first time its user comes (from the partition of that event, `partition_of(i)`); and
        the events whose user's state cannot be had (index -> why: a key that is not UTF-8,
        a stored value of no known format), whose row is -1 and whose state is left alone."""
        self._tick += 1
        get = self.row_of.get
        rows = [get(user) for user in users]
        failed: dict[int, str] = {}
        if None in rows:
            first: dict[tuple[str, str], int] = {}
            for i, row in enumerate(rows):
                if row is None:
                    first.setdefault(users[i], i)
            loaded, broken = self._load(list(first), [partition_of(i) for i in first.values()])
            for i, row in enumerate(rows):
                if row is None:
                    user = users[i]
                    if user in broken:
                        rows[i] = -1
                        failed[i] = broken[user]
                    else:
                        rows[i] = loaded[user]
        out = np.array(rows, dtype=np.int64)
        self.touched[out[out >= 0]] = self._tick
        return out, failed

    def _load(self, users: list[tuple[str, str]], partitions: list[int | None]
              ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], str]]:
        new = self.table.new_rows(len(users)).tolist()
        self._fit()
        loaded: dict[tuple[str, str], int] = {}
        broken: dict[tuple[str, str], str] = {}
        for user, partition, row in zip(users, partitions, new):
            try:
                key = state_key(*user)
                raw = self.load(key, partition)
                if raw is not None:
                    self.table.decode(row, raw)
            except Exception as exc:
                broken[user] = failure(exc)
                self.table.reset(np.array([row]))
                self.table.free([row])
                continue
            self.row_of[user] = loaded[user] = row
            self._user[row], self._key[row] = user, key
            self.stored_bytes[row] = len(raw) if raw is not None else 0
            self.dirty[row] = self.writing[row] = False
        return loaded, broken

    def key(self, row: int) -> bytes:
        return self._key[row]

    def stage(self, rows: np.ndarray, partitions: np.ndarray) -> None:
        """A batch changed these rows (each under the partition its records came from)."""
        self.dirty[rows] = True
        self.partition[rows] = partitions
        if len(self.row_of) > self.max_rows:
            self._evict(len(self.row_of) - self.max_rows * 9 // 10)
        self.table.compact_names(self.names_floor)

    def _clean(self) -> np.ndarray:
        """Held rows not waiting to be written: the only ones that may be dropped."""
        held = np.fromiter(self._user, dtype=np.int64, count=len(self._user))
        return held[~self.dirty[held] & ~self.writing[held]]

    def _evict(self, count: int) -> None:
        clean = self._clean()
        self._evict_rows(clean[np.argsort(self.touched[clean], kind="stable")[:count]].tolist())

    def forget_clean(self) -> None:
        """Drop every row not waiting to be written (a rebalance: another worker may have
        changed a partition that left and came back)."""
        self._evict_rows(self._clean().tolist())

    def _evict_rows(self, drop: list[int]) -> None:
        for row in drop:
            del self.row_of[self._user.pop(row)]
            del self._key[row]
        self.table.free(drop)

    def snapshot(self) -> Snapshot:
        """`take().encode()`: every dirty row as it is now, encoded, by partition."""
        return self.take().encode()

    def take(self) -> Taken:
        """Every dirty row as it is now, copied (to encode later: `Taken.encode`); they are
        clean again and held until `written`. Take it while no batch runs."""
        rows = np.flatnonzero(self.dirty)
        self.dirty[rows] = False
        self.writing[rows] = True
        return Taken(self, rows, self.partition[rows], self.table.gather(rows))

    def written(self) -> None:
        self.writing[:] = False

    def held_bytes(self, rows: np.ndarray) -> int:
        return int(self.stored_bytes[rows].sum())

    def state(self, user: tuple[str, str], partition: int | None = None) -> dict | None:
        """The user's state as a dict (pages, `fresh=1`, tests; seen ids as their hashes), if
        this worker holds or stores it; None if it has none. Raises ValueError if its stored
        value is unreadable."""
        rows, failed = self.rows_of([user], lambda i: partition)
        if failed:
            raise ValueError(failed[0])
        row = int(rows[0])
        if self.stored_bytes[row] == 0 and not self.table.n_seen[row]:
            if not self.dirty[row] and not self.writing[row]:
                self._evict_rows([row])                    # nothing stored nor folded: no state
            return None
        return self.table.state(row, seen_hashes=True)


class Taken:
    """A commit's dirty rows, copied while no batch ran; encoded while batches go on (the
    rows are held, so their keys stay)."""

    def __init__(self, users: UserRows, rows: np.ndarray, partitions: np.ndarray, gathered: Gathered) -> None:
        self.users, self.rows, self.partitions, self.gathered = users, rows, partitions, gathered

    def encode(self) -> Snapshot:
        """The rows' stored forms as they were when taken, by partition."""
        values = self.gathered.encode()
        self.users.stored_bytes[self.rows] = [len(value) for value in values]
        by_partition: Snapshot = {}
        key = self.users.key
        for row, partition, value in zip(self.rows.tolist(), self.partitions.tolist(), values):
            by_partition.setdefault(partition, []).append((key(row), value))
        return by_partition

