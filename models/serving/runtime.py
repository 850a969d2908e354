"""onnxruntime sessions and GPU discovery, without importing torch (serving stays light)."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import onnxruntime as ort

T = TypeVar("T")

__all__ = ["CudaStreamTimer", "cuda_device_name", "session_for"]


def session_for(path: Path, providers: list[Any] | None = None, threads: int | None = None) -> ort.InferenceSession:
    """An InferenceSession with explicit providers (default CPU) that logs errors only."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: no provider chatter on CPU machines
    if threads:
        opts.intra_op_num_threads = threads
    # Idle pool threads block instead of spinning: a spinning thread burns CPU after a call
    # returns, which no call's measurement sees (measured: ~10 % more than the calls' own).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers or ["CPUExecutionProvider"])


def cuda_device_name() -> str | None:
    """Name of GPU 0 from the CUDA driver, or None when there is no usable GPU.

    Asks libcuda directly (no torch import, no onnxruntime provider probing, which
    would print errors on machines without CUDA)."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return None
    name = ctypes.create_string_buffer(256)
    if cuda.cuDeviceGetName(name, 256, 0) != 0:
        return "gpu0"
    return name.value.decode(errors="replace")


class CudaStreamTimer:
    """The GPU's own time for a scoring call: a CUDA stream ONNX Runtime is told to run on
    (`user_compute_stream`) and two events recorded on it around each call, through the CUDA
    driver API (ctypes, no torch). Raises OSError when the driver refuses any step."""

    def __init__(self, device_id: int = 0) -> None:
        self._cuda = cuda = ctypes.CDLL("libcuda.so.1")
        device = ctypes.c_int(0)
        self._context = ctypes.c_void_p()
        self._stream = ctypes.c_void_p()
        self._start, self._end = ctypes.c_void_p(), ctypes.c_void_p()
        self._check("cuInit", cuda.cuInit(0))
        self._check("cuDeviceGet", cuda.cuDeviceGet(ctypes.byref(device), device_id))
        # The primary context: the one ONNX Runtime's CUDA provider (runtime API) uses too.
        self._check("cuDevicePrimaryCtxRetain", cuda.cuDevicePrimaryCtxRetain(ctypes.byref(self._context), device))
        self._check("cuCtxSetCurrent", cuda.cuCtxSetCurrent(self._context))
        self._check("cuStreamCreate", cuda.cuStreamCreate(ctypes.byref(self._stream), 0))
        self._check("cuEventCreate", cuda.cuEventCreate(ctypes.byref(self._start), 0))
        self._check("cuEventCreate", cuda.cuEventCreate(ctypes.byref(self._end), 0))

    @property
    def provider_options(self) -> dict[str, str]:
        """CUDA provider options that make ONNX Runtime run on this timer's stream."""
        return {"has_user_compute_stream": "1", "user_compute_stream": str(self._stream.value)}

    def time(self, fn: Callable[[], T]) -> tuple[T, float]:
        """`fn()` (which must finish its GPU work, as a run copying its outputs back does) and
        the seconds the GPU spent between the events around it."""
        cuda = self._cuda
        self._check("cuCtxSetCurrent", cuda.cuCtxSetCurrent(self._context))   # per calling thread
        self._check("cuEventRecord", cuda.cuEventRecord(self._start, self._stream))
        result = fn()
        self._check("cuEventRecord", cuda.cuEventRecord(self._end, self._stream))
        self._check("cuEventSynchronize", cuda.cuEventSynchronize(self._end))
        ms = ctypes.c_float(0.0)
        self._check("cuEventElapsedTime", cuda.cuEventElapsedTime(ctypes.byref(ms), self._start, self._end))
        return result, ms.value / 1000.0

    @staticmethod
    def _check(call: str, status: int) -> None:
        if status != 0:
            raise OSError(f"CUDA driver {call} failed with status {status}")
