"""Errors raised by the ``models`` package.

Hierarchy (one root, one-line subclasses, structured fields where callers need them)::

    ModelError
    ├── DataFormatError      a data file or event is malformed (path, line)
    ├── RegistryError        the registry directory is inconsistent
    │   ├── VersionNotFoundError
    │   └── ChecksumError    an artifact's sha256 does not match its manifest
    ├── ExportError          ONNX export or a parity check failed
    └── ScorerError          onnxruntime failed to load or run a model
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ChecksumError",
    "DataFormatError",
    "ExportError",
    "ModelError",
    "RegistryError",
    "ScorerError",
    "VersionNotFoundError",
]


class ModelError(Exception):
    """Root of every error raised by ``models``."""


class DataFormatError(ModelError):
    """A data file (or event) could not be parsed; names the file and 1-based line."""

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class RegistryError(ModelError):
    """The model registry is missing something or is inconsistent."""


class VersionNotFoundError(RegistryError):
    def __init__(self, registry: Path, version: str) -> None:
        self.registry = registry
        self.version = version
        super().__init__(f'Model version "{version}" not found in registry {registry}')


class ChecksumError(RegistryError):
    def __init__(self, path: Path, expected: str, actual: str) -> None:
        self.path = path
        self.expected = expected
        self.actual = actual
        super().__init__(f"{path}: sha256 {actual[:12]}… does not match manifest {expected[:12]}…")


class ExportError(ModelError):
    """ONNX export, quantization or the parity check against PyTorch failed."""


class ScorerError(ModelError):
    """onnxruntime could not load or run a model version."""


def first_line(exc: BaseException) -> str:
    """An exception's first non-blank line, for a one-line error (unpicklers and ONNX speak in pages)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0].lstrip(" .")[:200] if lines else type(exc).__name__
