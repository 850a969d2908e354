"""Which model scores which user: the promoted version, an optional A/B split by user
hash, and hot-swap when the registry's promoted version changes.

A swap replaces a reference between batches (see the registry timer in streams/worker/app.py),
so no event is dropped or scored twice across a swap.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

from reckon.models.core.registry import Registry
from reckon.models.serving.scorer import Scorer
from reckon.streams.core.errors import ReckonError
from reckon.streams.core.settings import Settings

log = logging.getLogger(__name__)


def user_bucket(user_id: str) -> float:
    """A stable number in [0, 1) per user (crc32, so every worker agrees)."""
    return zlib.crc32(user_id.encode()) / 2**32


class ModelRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry(settings.registry_dir)
        current = self.registry.current()
        if current is None:
            raise ReckonError(f"no promoted model in {settings.registry_dir}: "
                              "run `reckon train ... --promote` or `reckon demo` first")
        self._primary: Any = Scorer.load(current, device=settings.device, threads=settings.onnx_threads or None)
        self._challenger: Any = None
        if settings.ab_version:
            self._challenger = Scorer.load(self.registry.get(settings.ab_version), device=settings.device,
                                          threads=settings.onnx_threads or None)
        log.info("model %s on %s (%s)", self._primary.version, self._primary.device, self._primary.provider)

    @property
    def device(self) -> str:
        return self._primary.device

    @property
    def current_version(self) -> str:
        return self._primary.version

    @property
    def versions(self) -> dict[str, str]:
        """Slot -> version of every model scoring now (`challenger` only in an A/B split)."""
        out = {"primary": self._primary.version}
        if self._challenger is not None:
            out["challenger"] = self._challenger.version
        return out

    def scorer_for(self, user_id: str) -> Any:
        if self._challenger is not None and user_bucket(user_id) < self.settings.ab_fraction:
            return self._challenger
        return self._primary

    def arm_of(self, scorer: Any) -> str:
        """The A/B arm a scorer serves: "challenger" (RECKON_AB_VERSION) or "primary"."""
        return "challenger" if scorer is self._challenger else "primary"

    def load_promoted(self) -> Any:
        """A scorer for the newly promoted version, or None if the promotion is unchanged."""
        wanted = self.registry.current_id()
        if wanted is None or wanted == self._primary.version:
            return None
        return Scorer.load(self.registry.get(wanted), device=self.settings.device,
                           threads=self.settings.onnx_threads or None)

    def swap(self, scorer: Any) -> None:
        log.info("hot-swap: model %s -> %s", self._primary.version, scorer.version)
        self._primary = scorer
