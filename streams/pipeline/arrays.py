"""Array helpers the candidate index, the model inputs and the user table share: a string
vocabulary with dense int ids, right-aligned tails of lists, arrays grown by doubling, and
the starts of runs in a sorted array.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain

import numpy as np


class _Ids(dict):
    """name -> id; a missing name is given the next id, so encoding is one pass of lookups."""

    __slots__ = ("names",)

    def __missing__(self, name: str) -> int:
        self[name] = code = len(self.names)
        self.names.append(name)
        return code


class Vocab:
    """str <-> dense int id. Bounded by `compact`, which drops the ids nothing refers to."""

    def __init__(self, names: list[str] | None = None) -> None:
        self.names: list[str] = names or []
        self.ids = _Ids(zip(self.names, range(len(self.names))))
        self.ids.names = self.names

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, names: Sequence[str]) -> np.ndarray:
        """Ids of `names`; new names get the next ids, in order."""
        return np.fromiter(map(self.ids.__getitem__, names), dtype=np.int64, count=len(names))

    def encode_tails(self, lists: Sequence[Sequence[str]], width: int) -> np.ndarray:
        """(len(lists), width) ids of each list's last `width` names, right-aligned
        (oldest first), -1 where a list is shorter."""
        return tails(lists, width, -1, lookup=self.encode)

    def compact(self, live: np.ndarray) -> np.ndarray:
        """Keep the ids where `live` (bool per id), renumbered in their old order.

        Returns old id -> new id, -1 for dropped ones, one longer than the vocabulary so
        that indexing it with -1 (an empty slot) gives -1."""
        keep = np.flatnonzero(live)
        remap = np.full(len(self.names) + 1, -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        Vocab.__init__(self, [self.names[i] for i in keep.tolist()])
        return remap


def run_starts(ordered: np.ndarray) -> np.ndarray:
    """Where each run of equal values of a sorted array starts."""
    starts = np.empty(len(ordered), dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    return np.flatnonzero(starts)


def tails(lists: Sequence[Sequence], width: int, fill: int, right: bool = True,
          lookup: Callable[[list], Sequence[int]] | None = None) -> np.ndarray:
    """(len(lists), width): each list's last `width` values in order, right-aligned (or
    left-aligned), `fill` elsewhere; values mapped by `lookup` (one call for all) when given."""
    out = np.full((len(lists), width), fill, dtype=np.int64)
    lens = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    if len(lens) and lens.max() > width:
        lists = [values[len(values) - width:] if len(values) > width else values for values in lists]
        lens = np.minimum(lens, width)
    flat = list(chain.from_iterable(lists))
    values = np.asarray(lookup(flat) if lookup is not None else flat, dtype=np.int64)
    if len(values):
        starts = np.repeat(np.cumsum(lens) - lens, lens)
        column = np.arange(len(values)) - starts + (np.repeat(width - lens, lens) if right else 0)
        out[np.repeat(np.arange(len(lists)), lens), column] = values
    return out


def grown(array: np.ndarray, size: int, fill) -> np.ndarray:
    """`array` with at least `size` rows (doubling), new rows set to `fill`."""
    if len(array) >= size:
        return array
    out = np.full((max(size, 2 * len(array)),) + array.shape[1:], fill, dtype=array.dtype)
    out[:len(array)] = array
    return out
