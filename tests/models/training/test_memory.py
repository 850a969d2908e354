"""Training keeps freed memory for its next step, and gives it back when it ends."""

import sys

import numpy as np
import pytest

from reckon.models.training.memory import freed_memory_kept

MB = 1 << 20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def allocate_and_free(size: int) -> int:
    """RSS grown by touching `size` bytes and freeing them again."""
    before = rss()
    block = np.ones(size, dtype=np.uint8)
    del block
    return rss() - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc: Linux only")
def test_freed_memory_is_kept_while_training_and_handed_back_after() -> None:
    assert allocate_and_free(256 * MB) < 64 * MB           # by default a big block goes back at once
    with freed_memory_kept() as kept:
        assert kept
        held = allocate_and_free(256 * MB)
        assert held > 192 * MB                              # kept for the next step to reuse
        assert allocate_and_free(256 * MB) < 64 * MB        # ... which reuses it, no new pages
        inside = rss()
    assert inside - rss() > 192 * MB                        # handed back when training ends
    assert allocate_and_free(256 * MB) < 64 * MB            # and the defaults are back
