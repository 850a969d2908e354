"""onnxruntime sessions and GPU discovery, without importing torch (serving stays light)."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import onnxruntime as ort

__all__ = ["cuda_device_name", "session_for"]


def session_for(path: Path, providers: list[Any] | None = None, threads: int | None = None) -> ort.InferenceSession:
    """An InferenceSession with explicit providers (default CPU) that logs errors only."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: no provider chatter on CPU machines
    if threads:
        opts.intra_op_num_threads = threads
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
