"""The thread ONNX Runtime runs on, and the CPU time of the threads that did a call's work.

Every scoring call runs on one OS thread named `reckon-onnx`, and sessions are created on a
thread of the same name, so ONNX Runtime's intra-op pool threads (with `onnx_threads` > 1)
inherit it. A call's CPU time is then the scoring thread's CPU clock plus each pool
thread's, read around the call (the kernel's per-thread clocks, nanosecond resolution), and
nothing else the process does leaks in. From outside the process, the same threads are the
ones whose /proc/<pid>/task/<tid>/comm reads `reckon-onnx`: `reckon bench costs` checks the
summed device seconds against them.

Linux only (per-thread CPU clocks of other threads, prctl), as the rest of Reckon.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["THREAD_NAME", "DeviceUsage", "name_this_thread", "on_named_thread", "scoring_thread",
           "thread_cpu_seconds"]

T = TypeVar("T")
THREAD_NAME = "reckon-onnx"    # at most 15 bytes: the kernel's limit for a thread name
_PR_SET_NAME = 15


@dataclass
class DeviceUsage:
    """What scoring calls used, summed over the calls it was passed to."""

    cpu_seconds: float = 0.0      # CPU of the scoring thread and ONNX Runtime's pool threads
    device_seconds: float = 0.0   # the device's own time: = cpu_seconds on CPU, CUDA event time on a GPU


def _thread_clock(tid: int) -> int:
    """The clock id of a thread's CPU time (Linux's MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED))."""
    return ((~tid) << 3) | 6


def thread_cpu_seconds(tid: int) -> float:
    """CPU seconds a thread of this process has used; OSError once the thread has ended."""
    return time.clock_gettime(_thread_clock(tid))


def name_this_thread(name: str) -> None:
    """Name the calling OS thread (what /proc/<pid>/task/<tid>/comm shows), at most 15 bytes."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def _named_threads(name: str) -> set[int]:
    found = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as comm:
                if comm.read().strip() == name:
                    found.add(int(tid))
        except OSError:        # a thread that ended meanwhile
            continue
    return found


def on_named_thread(factory: Callable[[], T]) -> tuple[T, tuple[int, ...]]:
    """Run `factory` on a new thread named `reckon-onnx`; its result and the ids of the threads
    it started that carry the name (an ONNX Runtime session's intra-op pool, when it has one)."""
    before = _named_threads(THREAD_NAME)
    box: dict[str, object] = {}

    def run() -> None:
        name_this_thread(THREAD_NAME)
        box["tid"] = threading.get_native_id()
        try:
            box["result"] = factory()
        except BaseException as exc:   # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"{THREAD_NAME}-load", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    pool = _named_threads(THREAD_NAME) - before - {box["tid"]}
    return box["result"], tuple(sorted(pool))  # type: ignore[return-value]


class ScoringThread:
    """One OS thread that runs scoring calls and measures the CPU they took."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=THREAD_NAME, initializer=name_this_thread,
                                            initargs=(THREAD_NAME,))

    def call(self, fn: Callable[[], T], pool: tuple[int, ...]) -> tuple[T, float]:
        """`fn()` on the scoring thread: its result and the CPU seconds it took there and in `pool`."""
        return self._executor.submit(_measured, fn, pool).result()


def _measured(fn: Callable[[], T], pool: tuple[int, ...]) -> tuple[T, float]:
    own = time.thread_time()
    others = sum(thread_cpu_seconds(tid) for tid in pool)
    result = fn()
    return result, time.thread_time() - own + sum(thread_cpu_seconds(tid) for tid in pool) - others


_shared: ScoringThread | None = None
_shared_lock = threading.Lock()


def scoring_thread() -> ScoringThread:
    """The process's one scoring thread: scoring is sequential, every scorer shares it."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ScoringThread()
        return _shared
