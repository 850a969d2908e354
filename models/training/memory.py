"""How a training process asks for memory.

A training step allocates its (targets x items) logits and their gradients afresh, hundreds
of megabytes, and frees them at its end. By default glibc hands blocks over 32 MiB back to
the kernel on free, and the kernel faults every 4 KiB page in again (and zeroes it) on the
next step: on a 2-core VM a third of a step's CPU time went to that. Two settings remove it:

- PyTorch backs its tensors of 2 MiB and more with transparent huge pages when
  `THP_MEM_ALLOC_ENABLE` is set, which it reads once, at its first allocation: the package
  sets it on import (the user's own value wins), so import it before torch;
- `keep_freed_memory` makes glibc serve big blocks from the heap and keep what is freed,
  so the next step reuses the same pages without a fault.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1      # mallopt parameters (glibc's malloc.h)
_M_MMAP_MAX = -4
_KEEP_FREE_BYTES = 1 << 30  # free heap kept before any is handed back


def ask_for_huge_pages() -> None:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def keep_freed_memory() -> bool:
    """For the rest of this process (training only: a long-lived server should give memory
    back). True where it took effect; False off glibc, where nothing changes."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_FREE_BYTES))
