"""A directory of immutable model versions plus a ``CURRENT`` pointer.

Layout::

    <registry>/CURRENT                 the promoted version id (one line)
    <registry>/<version>/manifest.json version, created, data, config, metrics, files
                                       (sha256 + bytes), variants (size, throughput,
                                       quality delta, cost per 1k scores); a retrained
                                       version also `retraining` (parent, training cost,
                                       quality on the latest slice, promotion decision)
    <registry>/<version>/model.<variant>.onnx, item_ids.json, item_emb.npy, model.pt

Versions are written to a hidden staging directory and renamed into place, and
``CURRENT`` is replaced with ``os.replace``, so readers never see half a version or a
torn pointer. ``current_id()`` reads only the pointer, so workers can poll it often.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from reckon.models.core.errors import ChecksumError, RegistryError, VersionNotFoundError

__all__ = ["ModelVersion", "Registry", "sha256_file"]

VARIANTS = ("fp32", "int8", "fp16")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_ITEM_ID_CHARS = 128     # the event contract's limit on an id (streams/pipeline/contracts.py)


def _shape_problem(manifest: dict[str, Any]) -> str | None:
    """What makes a manifest unusable before any file is read (a hand edit, a torn copy, a
    hostile registry), or None: every field the registry and the worker index into."""
    if not isinstance(manifest["version"], str) or not manifest["version"]:
        return "version must be a non-empty string"
    for section in ("config", "metrics", "training", "cost", "data"):
        if section in manifest and not isinstance(manifest[section], dict):
            return f"{section} must be a JSON object"
    files = manifest.get("files", {})
    if not isinstance(files, dict):
        return "files must be a JSON object of file name -> {sha256, bytes}"
    for name, info in files.items():
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            return f"files lists {name[:60]!r}, which is not a file name in the version's directory"
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str) \
                or not _SHA256.fullmatch(info["sha256"]):
            return f"files[{name[:60]!r}] must be an object with a sha256 of 64 hex digits"
    return None


class ModelVersion:
    """One registered version; files are read lazily and never change once written."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self._path = path
        self._manifest = manifest

    @property
    def version(self) -> str:
        return str(self._manifest["version"])

    @property
    def path(self) -> Path:
        return self._path

    @property
    def manifest(self) -> dict[str, Any]:
        return self._manifest

    def onnx_path(self, variant: str = "fp32") -> Path:
        if variant not in VARIANTS:
            raise RegistryError(f'Unknown variant "{variant}" (expected one of {", ".join(VARIANTS)})')
        name = f"model.{variant}.onnx"
        if name not in self._manifest.get("files", {}):
            raise RegistryError(f'Version "{self.version}" has no {variant} variant')
        return self._path / name

    @property
    def variants(self) -> list[str]:
        files = self._manifest.get("files", {})
        return [v for v in VARIANTS if f"model.{v}.onnx" in files]

    @cached_property
    def item_ids(self) -> list[str]:
        """External item id of internal index i + 1 (index 0 is padding)."""
        with (self._path / "item_ids.json").open(encoding="utf-8") as fh:
            ids = json.load(fh)
        where = self._path / "item_ids.json"
        if not isinstance(ids, list):
            raise RegistryError(f"{where}: expected a JSON list")
        # ids the event contract could carry: serving publishes them, and maps events' ids to them
        names = [str(x) for x in ids if isinstance(x, (str, int)) and not isinstance(x, bool)]
        if len(names) != len(ids):
            raise RegistryError(f"{where}: every item id must be a string or an integer")
        bad = next((n for n in names if not 0 < len(n) <= MAX_ITEM_ID_CHARS or not n.isprintable()), None)
        if bad is not None:
            raise RegistryError(f"{where}: item id {bad[:40]!r} is not 1..{MAX_ITEM_ID_CHARS} printable characters")
        if len(set(names)) != len(names):
            raise RegistryError(f"{where}: an item id appears twice")
        return names

    def verify(self, names: list[str] | None = None) -> None:
        """Recompute sha256 of the named files (default: all) against the manifest."""
        files = self._manifest.get("files", {})
        for name in names if names is not None else list(files):
            info = files.get(name)
            if info is None:
                raise RegistryError(f'Version "{self.version}" lists no file "{name}"')
            path = self._path / name
            if not path.is_file():
                raise RegistryError(f"{path}: file listed in the manifest is missing")
            actual = sha256_file(path)
            if actual != info["sha256"]:
                raise ChecksumError(path, info["sha256"], actual)

    def __repr__(self) -> str:
        return f"ModelVersion({self.version!r}, {str(self._path)!r})"


class Registry:
    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._path.mkdir(parents=True, exist_ok=True)
        self._cache: dict[str, tuple[int, ModelVersion]] = {}  # version -> (manifest mtime, mv)

    @classmethod
    def existing(cls, path: Path) -> "Registry":
        """A registry that must already exist, for commands that read one: creates nothing."""
        path = Path(path)
        if not path.exists():
            raise RegistryError(f"no model registry at {path}: the directory does not exist")
        if not path.is_dir():
            raise RegistryError(f"{path} is not a directory, so not a model registry")
        return cls(path)

    @staticmethod
    def check_writable(path: Path) -> None:
        """A RegistryError unless versions can be added at ``path`` (an existing registry, or a
        directory that can be created there); creates nothing. For a command to call before the
        work that ends in a new version."""
        path = Path(path)
        for parent in (path, *path.parents):
            if not parent.exists():
                continue
            if not parent.is_dir():
                where = "it is a file" if parent == path else f"{parent} is a file"
                raise RegistryError(f"{path} cannot be a model registry: {where}, not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise RegistryError(f"{path} cannot be a model registry: {parent} is not writable")
            return

    @property
    def path(self) -> Path:
        return self._path

    def current_id(self) -> str | None:
        try:
            text = (self._path / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise RegistryError(f"{self._path / 'CURRENT'}: not UTF-8 text, so names no version") from None
        return text or None

    def current(self) -> ModelVersion | None:
        version = self.current_id()
        return None if version is None else self.get(version)

    def get(self, version: str) -> ModelVersion:
        if not version or "/" in version or version.startswith("."):
            raise VersionNotFoundError(self._path, version)
        manifest_path = self._path / version / "manifest.json"
        try:
            mtime = manifest_path.stat().st_mtime_ns
        except FileNotFoundError:
            raise VersionNotFoundError(self._path, version) from None
        cached = self._cache.get(version)
        if cached is not None and cached[0] == mtime:
            return cached[1]  # artifacts are immutable; only added measurements change the manifest
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise VersionNotFoundError(self._path, version) from None
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{manifest_path}: invalid JSON ({exc.msg})") from None
        except RecursionError:
            raise RegistryError(f"{manifest_path}: invalid JSON (nested too deeply)") from None
        except UnicodeDecodeError:
            raise RegistryError(f"{manifest_path}: not UTF-8 text") from None
        if not isinstance(manifest, dict) or "version" not in manifest:
            raise RegistryError(f"{manifest_path}: expected a JSON object with a version")
        problem = _shape_problem(manifest)
        if problem:
            raise RegistryError(f"{manifest_path}: {problem}")
        mv = ModelVersion(self._path / version, manifest)
        self._cache[version] = (mtime, mv)
        return mv

    def list(self) -> list[ModelVersion]:
        """All versions, oldest first (by manifest ``created``, then id); RegistryError if
        any manifest cannot be read."""
        versions, unreadable = self.scan()
        if unreadable:
            raise RegistryError(next(iter(unreadable.values())))
        return versions

    def scan(self) -> tuple[list[ModelVersion], dict[str, str]]:
        """The versions whose manifests read, oldest first, and why each other one does not:
        one corrupt manifest must not hide the rest."""
        out, unreadable = [], {}
        for child in self._path.iterdir():
            if child.is_dir() and not child.name.startswith(".") and (child / "manifest.json").is_file():
                try:
                    out.append(self.get(child.name))
                except RegistryError as exc:
                    unreadable[child.name] = str(exc)
        return sorted(out, key=lambda mv: (str(mv.manifest.get("created", "")), mv.version)), unreadable

    def promote(self, version: str, check: Callable[[ModelVersion], None] | None = None) -> None:
        """Make `version` the one workers serve, once every file of it matches its checksum
        and `check` (a test load: models/serving/scorer.py `check_version`) passed; raises
        ModelError and leaves the pointer as it was otherwise."""
        mv = self.get(version)
        # The variants to checksum and test-load come from `files`: with none listed (or no
        # fp32, which workers serve by default) both checks pass and the worker refuses it later.
        if not mv.manifest.get("files"):
            raise RegistryError(f'{mv.path / "manifest.json"}: lists no files, so version "{version}" '
                                "cannot be served")
        if "fp32" not in mv.variants:
            raise RegistryError(f'{mv.path / "manifest.json"}: version "{version}" has no fp32 variant '
                                "(model.fp32.onnx), which workers serve")
        mv.verify()
        if check is not None:
            check(mv)
        tmp = self._path / f".CURRENT.{os.getpid()}.tmp"
        tmp.write_text(version + "\n", encoding="utf-8")
        os.replace(tmp, self._path / "CURRENT")

    def record_measurement(self, version: str, key: str, measurement: dict[str, Any]) -> ModelVersion:
        """Add ``manifest["measurements"][key]`` (e.g. scoring cost on another device).

        Only the manifest changes (atomically); the checksummed artifacts never do.
        """
        measurements = {**self.get(version).manifest.get("measurements", {}), key: measurement}
        return self.update_manifest(version, "measurements", measurements)

    def update_manifest(self, version: str, section: str, value: Any) -> ModelVersion:
        """Set one top-level section of a version's manifest (e.g. ``retraining``: what a retrain
        measured and decided). Only the manifest changes (atomically); artifacts never do."""
        if section in ("version", "files"):
            raise RegistryError(f'"{section}" names the version\'s identity and files: it cannot be updated')
        mv = self.get(version)
        manifest = {**mv.manifest, section: value}
        path = mv.path / "manifest.json"
        tmp = mv.path / f".manifest.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
        self._cache.pop(version, None)
        return self.get(version)

    def import_version(self, mv: ModelVersion) -> ModelVersion:
        """A copy of another registry's version: same id and manifest, files checked on the way."""
        mv.verify()
        staging = self.staging_dir()
        for name in mv.manifest.get("files", {}):
            shutil.copy2(mv.path / name, staging / name)
        return self.add(staging, {k: v for k, v in mv.manifest.items() if k != "files"})

    def staging_dir(self) -> Path:
        """A fresh hidden directory inside the registry (same filesystem, so rename is atomic)."""
        return Path(tempfile.mkdtemp(prefix=".staging-", dir=self._path))

    def add(self, staging: Path, manifest: dict[str, Any]) -> ModelVersion:
        """Checksum every file in ``staging``, write the manifest, rename into place."""
        version = str(manifest["version"])
        target = self._path / version
        if target.exists():
            shutil.rmtree(staging, ignore_errors=True)
            raise RegistryError(f'Version "{version}" already exists in {self._path}')
        files = {
            p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(staging.iterdir())
            if p.is_file() and p.name != "manifest.json"
        }
        manifest = {**manifest, "files": files}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(staging, target)
        return self.get(version)
