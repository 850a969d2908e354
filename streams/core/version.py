"""The installed distribution's version (`reckon --version`, the startup line, reckon_build_info)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("reckon")
except PackageNotFoundError:   # run from a source tree that was never installed
    __version__ = "0+unknown"
