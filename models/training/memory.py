"""How a training process asks for memory.

A training step allocates its (targets x items) logits and their gradients afresh, hundreds
of megabytes, and frees them at its end. By default glibc hands blocks over 32 MiB back to
the kernel on free, and the kernel faults every 4 KiB page in again (and zeroes it) on the
next step: on a 2-core VM a third of a step's CPU time went to that. Two settings remove it:

- PyTorch backs its tensors of 2 MiB and more with transparent huge pages when
  `THP_MEM_ALLOC_ENABLE` is set, which it reads once, at its first allocation: the package
  sets it on import (the user's own value wins), so import it before torch;
- while training runs (`freed_memory_kept`), glibc serves big blocks from the heap and keeps
  what is freed, so the next step reuses the same pages without a fault.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1      # mallopt parameters and glibc's defaults for them (malloc.h)
_M_MMAP_MAX = -4
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
_KEEP_FREE_BYTES = 1 << 30  # free heap kept before any is handed back


def ask_for_huge_pages() -> None:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@contextmanager
def freed_memory_kept() -> Iterator[bool]:
    """Inside: glibc serves big blocks from the heap and keeps what is freed (yields True;
    False off glibc, where nothing changes). After: its defaults again, and the kept memory
    handed back, so a process that trained (the demo's, a test run's) does not hold it."""
    libc = _glibc()
    if libc is None:
        yield False
        return
    kept = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_FREE_BYTES))
    try:
        yield kept
    finally:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
