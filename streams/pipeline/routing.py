"""Which model scores which user: the promoted version, an optional A/B split by user
hash, and hot-swap when the registry's promoted version changes.

A swap replaces a reference between batches (see the registry timer in streams/worker/app.py),
so no event is dropped or scored twice across a swap.

A version is served only once it has loaded and scored a test row with every file it reads
matching its checksum (`Scorer.check`). A promoted version that fails is refused: logged
once, listed in `rejected` (a metric), and the version already serving goes on. A worker
that starts while the promoted version is bad serves the newest version that works.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from typing import Any

from reckon.models.core.errors import ModelError
from reckon.models.core.registry import Registry
from reckon.models.serving.scorer import Scorer
from reckon.streams.core.errors import ReckonError
from reckon.streams.core.settings import Settings

log = logging.getLogger(__name__)


def user_bucket(user_id: str) -> float:
    """A stable number in [0, 1) per user (crc32, so every worker agrees)."""
    return zlib.crc32(user_id.encode("utf-8", "surrogatepass")) / 2**32


class ModelRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry(settings.registry_dir)
        self.rejected: dict[str, str] = {}       # version -> why it is not served (this process)
        self._primary: Any = self._start()
        self._challenger: Any = None
        if settings.ab_version:
            self._challenger = self._load(settings.ab_version)
            if self._challenger is None:
                log.error("A/B challenger %s is not served: every user gets %s", settings.ab_version,
                          self._primary.version)
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

    def scorers_for(self, user_ids: Sequence[str]) -> list[Any]:
        """`scorer_for` of each user; without an A/B split, no per-user hash (a batch of live
        traffic routes thousands of users)."""
        if self._challenger is None:
            return [self._primary] * len(user_ids)
        return [self.scorer_for(user_id) for user_id in user_ids]

    def arm_of(self, scorer: Any) -> str:
        """The A/B arm a scorer serves: "challenger" (RECKON_AB_VERSION) or "primary"."""
        return "challenger" if scorer is self._challenger else "primary"

    def _load(self, version: str) -> Any:
        """A checked scorer for `version`, or None (the version is then rejected, logged once)."""
        try:
            scorer = Scorer.load(self.registry.get(version), device=self.settings.device,
                                 threads=self.settings.onnx_threads or None)
            scorer.check()
            return scorer
        except ModelError as exc:
            self.rejected[version] = str(exc)
            log.error("model version %s refused, not served: %s", version, exc)
            return None

    def _start(self) -> Any:
        promoted = self.registry.current_id()
        if promoted is None:
            raise ReckonError(f"no promoted model in {self.settings.registry_dir}: "
                              "run `reckon bootstrap` (a small model), `reckon train ... --promote` or `reckon demo` "
                              "first (every role that scores loads it)")
        scorer = self._load(promoted)
        if scorer is not None:
            return scorer
        try:
            versions, unreadable = self.registry.scan()
        except OSError as exc:
            raise ReckonError(f"the promoted version {promoted} was refused and the registry cannot be "
                              f"listed: {exc}") from None
        self.rejected.update({v: why for v, why in unreadable.items() if v not in self.rejected})
        for mv in reversed(versions):     # newest first
            if mv.version not in self.rejected:
                scorer = self._load(mv.version)
                if scorer is not None:
                    log.error("serving %s: the promoted version %s was refused", mv.version, promoted)
                    return scorer
        raise ReckonError(f"no version in {self.settings.registry_dir} can be served: "
                          + "; ".join(f"{v}: {why}" for v, why in self.rejected.items()))

    def load_promoted(self) -> Any:
        """A checked scorer for a newly promoted version; None when the promotion is
        unchanged or the version was refused (then the current one goes on)."""
        wanted = self.registry.current_id()
        if wanted is None or wanted == self._primary.version or wanted in self.rejected:
            return None
        return self._load(wanted)

    def swap(self, scorer: Any) -> None:
        log.info("hot-swap: model %s -> %s", self._primary.version, scorer.version)
        self._primary = scorer
