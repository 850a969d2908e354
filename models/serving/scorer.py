"""Serving: one onnxruntime session per model version.

``Scorer.load(mv, device="auto")`` picks CUDA only when onnxruntime offers the CUDA
provider AND the driver reports a GPU; providers are always passed explicitly and the
session logs errors only, so a CPU machine prints no provider warnings. Defaults:
int8 on CPU (dynamic quantization pays there), fp16 on CUDA (int8 would fall back to
CPU kernels), fp32 when the preferred variant is missing. On CUDA, scores are
produced through IO binding (output allocated on the device, copied back once).

Histories come left-padded to ``max_len``. A model exported with a dynamic history axis
is run without the padding: rows are grouped by history length (rounded up to a short
ladder of widths) and each group is scored at its width, so a batch of short sessions
costs what short sessions cost (measured: 54 -> 13 us per row from 20 positions to 2,
bench/INGEST.md) and scores stay those of the padded input.

Item vectors are an input of the graph (``item_table``), fed from the table the scorer
holds: the version's trained rows (``item_emb.npy``), then rows it was given for items the
version never saw (``set_estimates``, cold start between retrains). Trained rows never
change; an estimated item has an index above ``trained_items`` and its row may be
re-estimated. Versions exported before the table was an input score as they did and
cannot be extended (``extendable`` is False).

Every call runs on the process's scoring thread (an OS thread named `reckon-onnx`, see
threads.py), which measures what it used: CPU seconds of the threads that ran it (the
scoring thread and ONNX Runtime's intra-op pool) and device seconds, which on CPU are those
same CPU seconds and on CUDA the GPU's own time between two events on the stream the
session runs on (CudaStreamTimer).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property
from itertools import repeat
from typing import Any

import numpy as np
import onnxruntime as ort

from reckon.models.core.errors import ScorerError
from reckon.models.core.registry import ModelVersion
from reckon.models.core.terms import hash_terms
from reckon.models.serving.runtime import CudaStreamTimer, cuda_device_name, session_for
from reckon.models.serving.threads import DeviceUsage, on_named_thread, scoring_thread

__all__ = ["DeviceUsage", "Scorer", "check_version", "cuda_device_name"]

log = logging.getLogger(__name__)


class Scorer:
    def __init__(self, mv: ModelVersion, session: ort.InferenceSession, device: str, variant: str,
                 pool: tuple[int, ...] = (), timer: CudaStreamTimer | None = None) -> None:
        self._mv = mv
        self._session = session
        self._device = device
        self._variant = variant
        self._pool = pool            # ONNX Runtime's intra-op threads (their CPU counts to a call)
        self._timer = timer          # CUDA only: the GPU time of a call
        cfg = mv.manifest.get("config", {})
        self._max_len = _config_int(mv, cfg, "max_len", 1, MAX_HISTORY)
        self._query_buckets = _config_int(mv, cfg, "query_buckets", 0, 1 << 24, default=0)
        _config_int(mv, cfg, "num_items", 1, 1 << 31)      # `reckon eval` and retraining read it
        self._inputs = {i.name for i in session.get_inputs()}
        history = next(i for i in session.get_inputs() if i.name == "history")
        # A symbolic (str) time dimension means the export accepts any history width.
        self._widths = _widths(self._max_len) if isinstance(history.shape[1], str) else None
        self._index = {item: i + 1 for i, item in enumerate(mv.item_ids)}
        self._trained = len(mv.item_ids)
        try:       # (N + 1, H), row 0 padding; no pickles (a crafted file runs code on load)
            table = np.load(mv.path / "item_emb.npy", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ScorerError(f"{mv.path / 'item_emb.npy'}: not a numeric .npy array ({exc})") from None
        if table.ndim != 2 or table.dtype.kind not in "fiu":
            raise ScorerError(f"{mv.path / 'item_emb.npy'}: expected a 2-d numeric array, got {table.dtype} "
                              f"of shape {table.shape}")
        table = table.astype(np.float32)
        if len(table) != self._trained + 1:
            raise ScorerError(f"{mv.path}: item_emb.npy has {len(table)} rows for {self._trained} items")
        self._rows = len(table)          # rows in use; the arrays below hold spare rows to grow into
        self._table = table
        self._names = np.array([""] + list(mv.item_ids), dtype=object)   # index -> id, "" past _rows
        self._device_table: ort.OrtValue | None = None                   # the table on the GPU, when bound

    @classmethod
    def load(cls, mv: ModelVersion, device: str = "auto", variant: str | None = None,
             threads: int | None = None, verify: bool = True) -> "Scorer":
        """device: "auto" | "cpu" | "cuda"; variant: "fp32" | "int8" | "fp16" | None (default per device)."""
        gpu = None
        if device in ("auto", "cuda"):
            gpu = cuda_device_name() if "CUDAExecutionProvider" in ort.get_available_providers() else None
            if gpu is None and device == "cuda":
                raise ScorerError("device='cuda' but onnxruntime has no CUDA provider or no GPU is visible")
        elif device != "cpu":
            raise ScorerError(f'Unknown device "{device}" (expected auto, cpu or cuda)')
        if variant is None:
            preferred = "fp16" if gpu else "int8"
            variant = preferred if preferred in mv.variants else "fp32"
        path = mv.onnx_path(variant)
        if verify:   # every file serving reads (the embeddings lazily, for nearest items)
            mv.verify([path.name, "item_ids.json", "item_emb.npy"])
        timer = None
        try:
            if gpu:
                if hasattr(ort, "preload_dlls"):
                    ort.preload_dlls()  # CUDA/cuDNN from pip-installed nvidia wheels, if any
                (session, timer), pool = on_named_thread(lambda: _cuda_session(path, threads))
                if timer is None or session.get_providers()[0] != "CUDAExecutionProvider":
                    if device == "cuda":
                        raise ScorerError(f"{path}: CUDA provider (or its stream timer) failed to initialise")
                    log.warning("CUDA provider did not initialise; scoring %s on CPU", mv.version)
                    gpu, timer = None, None
            if not gpu:
                session, pool = on_named_thread(lambda: session_for(path, ["CPUExecutionProvider"], threads))
        except ScorerError:
            raise
        except Exception as exc:
            raise ScorerError(f"{path}: onnxruntime could not load the model: {exc}") from exc
        return cls(mv, session, f"cuda:{gpu}" if gpu else "cpu", variant, pool, timer)

    # --- read-only properties ---------------------------------------------------------
    @property
    def version(self) -> str:
        return self._mv.version

    @property
    def device(self) -> str:
        return self._device

    @property
    def provider(self) -> str:
        return self._session.get_providers()[0]

    @property
    def variant(self) -> str:
        return self._variant

    @property
    def max_len(self) -> int:
        return self._max_len

    @property
    def pool_threads(self) -> tuple[int, ...]:
        """Thread ids of ONNX Runtime's intra-op pool for this session (none with one thread)."""
        return self._pool

    @property
    def num_items(self) -> int:
        """Items the scorer can rank: the trained ones and those it was given estimates for."""
        return self._rows - 1

    @property
    def trained_items(self) -> int:
        """Items of the version itself: indices 1..trained_items; estimated ones come after."""
        return self._trained

    @property
    def extendable(self) -> bool:
        """Whether the graph reads item vectors from the table (versions exported before it did cannot)."""
        return "item_table" in self._inputs

    def check(self) -> None:
        """Score a row and find an item's neighbours, as serving will: a version that
        cannot (or scores NaN) is refused here, never met mid-stream. Raises ScorerError."""
        if self.num_items < 1:
            raise ScorerError(f"{self.version} has no items")
        candidates = np.arange(1, min(self.num_items, 4) + 1, dtype=np.int64)[None, :]
        history = np.zeros((1, self._max_len), dtype=np.int64)
        history[0, -1] = 1
        scores = self.score(history, candidates)
        if scores.shape != candidates.shape or not np.isfinite(scores).all():
            raise ScorerError(f"{self.version}/{self._variant} scored a test row {scores.tolist()}")
        try:
            self.nearest_items(np.array([1], dtype=np.int64), 2)
        except Exception as exc:
            raise ScorerError(f"{self.version}: item embeddings unusable: {exc}") from exc

    # --- ids --------------------------------------------------------------------------
    def item_index(self, item_id: str) -> int:
        return self._index.get(str(item_id), 0)

    def item_indices(self, item_ids: Sequence[str]) -> list[int]:
        """item_index for many string ids at once (the ids Events carry), in C: the serving
        hot path maps ~50 per scored event."""
        return list(map(self._index.get, item_ids, repeat(0, len(item_ids))))

    def item_ids(self, indices: np.ndarray) -> list[str]:
        """External ids for internal indices; padding (0) and out-of-range map to "".
        The index -> id object array answers a batch's lookups in one call."""
        idx = np.asarray(indices, dtype=np.int64).ravel()
        names = self._names
        return names[np.where((idx > 0) & (idx < len(names)), idx, 0)].tolist()

    # --- the item table -------------------------------------------------------------------
    def item_vectors(self, indices: np.ndarray) -> np.ndarray:
        """(K,) indices -> (K, H) rows of the table as scored (trained or estimated)."""
        return self._table[np.asarray(indices, dtype=np.int64)]

    def set_estimates(self, item_ids: Sequence[str], vectors: np.ndarray) -> list[int]:
        """Give items the version never saw a row (or a new estimate for their row) so they can
        be scored; returns their indices. A trained item keeps its trained row (its vector
        here is ignored), so nothing the version learned is ever overwritten."""
        if not self.extendable:
            raise ScorerError(f"{self.version} was exported with its item table inside the graph: "
                              "re-export it to rank items it never saw")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(item_ids), self._table.shape[1]):
            raise ScorerError(f"estimates must be ({len(item_ids)}, {self._table.shape[1]}), got {vectors.shape}")
        out = []
        for item, vector in zip(item_ids, vectors):
            index = self._index.get(item)
            if index is None:
                index = self._index[item] = self._rows
                self._grow(self._rows + 1)
                self._names[index] = item
                self._rows += 1
            if index > self._trained:
                self._table[index] = vector
            out.append(index)
        self._device_table = None
        return out

    def _grow(self, rows: int) -> None:
        """Room for `rows` rows, doubling, so appending estimates one batch at a time stays cheap."""
        if rows <= len(self._table):
            return
        size = max(rows, 2 * len(self._table))
        table = np.zeros((size, self._table.shape[1]), dtype=np.float32)
        table[:self._rows] = self._table[:self._rows]
        names = np.full(size, "", dtype=object)
        names[:self._rows] = self._names[:self._rows]
        self._table, self._names = table, names

    def query_term_ids(self, terms: list[str]) -> list[int]:
        return hash_terms(terms, self._query_buckets)

    # --- scoring ----------------------------------------------------------------------
    def _fit_history(self, history: np.ndarray) -> np.ndarray:
        h = np.asarray(history, dtype=np.int64)
        if h.ndim != 2:
            raise ScorerError(f"history must be (batch, time), got shape {h.shape}")
        t = h.shape[1]
        if t > self._max_len:
            return np.ascontiguousarray(h[:, t - self._max_len:])  # keep the most recent items
        if t < self._max_len:
            return np.pad(h, ((0, 0), (self._max_len - t, 0)))
        return np.ascontiguousarray(h)

    def score(self, history: np.ndarray, candidates: np.ndarray, query_terms: np.ndarray | None = None,
              usage: DeviceUsage | None = None) -> np.ndarray:
        """history (B, T) left-padded, candidates (B, C), query_terms (B, Q) -> (B, C) float32.
        Indices above ``num_items`` are out of the table: ONNX Runtime rejects them. The call's
        CPU and device seconds are added to `usage` when given."""
        gpu = DeviceUsage()
        scores, cpu = scoring_thread().call(lambda: self._score(history, candidates, query_terms, gpu), self._pool)
        if usage is not None:
            usage.cpu_seconds += cpu
            usage.device_seconds += gpu.device_seconds if self._timer is not None else cpu
        return scores

    def _score(self, history: np.ndarray, candidates: np.ndarray, query_terms: np.ndarray | None,
               gpu: DeviceUsage) -> np.ndarray:
        feeds = {"history": self._fit_history(history),
                 "candidates": np.ascontiguousarray(candidates, dtype=np.int64)}
        if feeds["candidates"].ndim != 2 or feeds["candidates"].shape[0] != feeds["history"].shape[0]:
            raise ScorerError(f"candidates must be (batch, C) with batch {feeds['history'].shape[0]}, "
                              f"got {feeds['candidates'].shape}")
        if "query_terms" in self._inputs:
            q = np.zeros((len(feeds["history"]), 1), dtype=np.int64) if query_terms is None else query_terms
            feeds["query_terms"] = np.ascontiguousarray(q, dtype=np.int64)
        try:
            if self._widths is None:
                return self._run(feeds, gpu)
            return self._run_trimmed(feeds, gpu)
        except Exception as exc:
            raise ScorerError(f"scoring with {self.version}/{self._variant} failed: {exc}") from exc

    def _run(self, feeds: dict[str, np.ndarray], gpu: DeviceUsage) -> np.ndarray:
        """Rows' feeds (history, candidates, query terms) -> scores; the table is added here,
        never sliced with the rows."""
        if self._timer is not None:
            scores, seconds = self._timer.time(lambda: self._run_bound(feeds))
            gpu.device_seconds += seconds
            return scores
        if self.extendable:
            feeds = {**feeds, "item_table": self._table[:self._rows]}   # a contiguous view: no copy
        return self._session.run(["scores"], feeds)[0]

    def _run_trimmed(self, feeds: dict[str, np.ndarray], gpu: DeviceUsage) -> np.ndarray:
        """Each row at the narrowest width that holds its history (leading padding cut):
        one call per width present in the batch, a width with fewer than _MIN_ROWS rows
        joining the next wider one (a call costs ~0.1 ms before its first row)."""
        history = feeds["history"]
        filled = history != 0
        lengths = np.where(filled.any(axis=1), history.shape[1] - filled.argmax(axis=1), 0)
        width = self._widths[np.searchsorted(self._widths, lengths)]  # (B,) smallest width >= length
        present, counts = np.unique(width, return_counts=True)
        run_at = present.copy()              # the width each present width is scored at
        start, pending = 0, 0
        for i, count in enumerate(counts.tolist()):
            pending += count
            if pending >= _MIN_ROWS or i == len(present) - 1:
                run_at[start:i + 1] = present[i]
                start, pending = i + 1, 0
        width = run_at[np.searchsorted(present, width)]
        present = np.unique(run_at)
        if len(present) == 1:
            w = int(present[0])
            return self._run({**feeds, "history": np.ascontiguousarray(history[:, -w:])}, gpu)
        out = np.empty(feeds["candidates"].shape, dtype=np.float32)
        for w in present.tolist():
            rows = np.flatnonzero(width == w)
            part = {name: value[rows] for name, value in feeds.items()}
            part["history"] = np.ascontiguousarray(part["history"][:, -w:])
            out[rows] = self._run(part, gpu)
        return out

    def _run_bound(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        binding = self._session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        if self.extendable:
            # Copied to the device once per change of the table, not once per call.
            if self._device_table is None:
                self._device_table = ort.OrtValue.ortvalue_from_numpy(self._table[:self._rows], "cuda", 0)
            binding.bind_ortvalue_input("item_table", self._device_table)
        binding.bind_output("scores", "cuda", 0)
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    # --- embeddings -------------------------------------------------------------------
    @cached_property
    def _unit_trained(self) -> np.ndarray:
        return _unit(self._table[:self._trained + 1])  # (N + 1, H): the trained rows never change

    def nearest_items(self, item_index: np.ndarray, n: int) -> np.ndarray:
        """(K,) internal indices -> (K, n) most cosine-similar trained items, never the item
        itself or 0. An estimated item's neighbours follow its current estimate."""
        idx = np.asarray(item_index, dtype=np.int64).ravel()
        emb = self._unit_trained
        n = min(n, emb.shape[0] - 2)
        sims = _unit(self._table[idx]) @ emb.T  # (K, N + 1)
        sims[:, 0] = -np.inf
        own = np.flatnonzero(idx <= self._trained)
        sims[own, idx[own]] = -np.inf
        top = np.argpartition(-sims, n - 1, axis=1)[:, :n] if n > 0 else np.zeros((len(idx), 0), np.int64)
        order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
        return np.take_along_axis(top, order, axis=1).astype(np.int64)


def _cuda_session(path: Any, threads: int | None) -> tuple[ort.InferenceSession | None, CudaStreamTimer | None]:
    """A CUDA session running on a timed stream; (None, None) when the timer cannot be set up
    (the caller then falls back as for a provider that did not initialise)."""
    try:
        timer = CudaStreamTimer()
    except OSError as exc:
        log.warning("CUDA stream timer: %s", exc)
        return None, None
    options = {"device_id": 0, **timer.provider_options}
    return session_for(path, [("CUDAExecutionProvider", options), "CPUExecutionProvider"], threads), timer


MAX_HISTORY = 4096   # history positions a version may ask for (the presets use 20-200)


def _config_int(mv: ModelVersion, cfg: dict, key: str, low: int, high: int, default: int | None = None) -> int:
    """An integer setting of a version's manifest, within [low, high]: ScorerError otherwise."""
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ScorerError(f"{mv.version}: config.{key} must be an integer in [{low}, {high}], not {value!r:.40}")
    return value


def check_version(mv: ModelVersion) -> None:
    """Every variant of `mv` loaded on the CPU (files checked against the manifest) and
    checked: what `reckon model promote` requires before it moves the pointer."""
    for variant in mv.variants:
        Scorer.load(mv, device="cpu", variant=variant).check()


_MIN_ROWS = 32   # rows worth a call of their own: below it, padding to the next width is cheaper


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def _widths(max_len: int) -> np.ndarray:
    """History widths a batch is split into: 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (each at most
    1.5x the last, so a row pays for at most half again its length), then max_len."""
    ladder, w = [1, 2, 3], 4
    while w < max_len:
        ladder += [w, w * 3 // 2]
        w *= 2
    return np.array(sorted({x for x in ladder if x < max_len} | {max_len}), dtype=np.int64)
