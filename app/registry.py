"""Which model version is live, and how a newer one replaces it without dropping requests.

Versions are what ``contract.version_dirs`` finds under the base path. A candidate is
loaded, verified and warmed beside the live model, then swapped in with one reference
assignment, so every batch is scored entirely by one version and reports that version.
A broken candidate is logged once, remembered, and the live version keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.errors import BrokenModelError, NotReadyError
from app.metrics import ServiceMetrics
from app.predictor import Predictor
from contract import version_dirs

logger = logging.getLogger(__name__)

Loader = Callable[[Path], Predictor]
_DirectoryIdentity = tuple[int, int, int]


def _identity(path: Path) -> _DirectoryIdentity:
    # A directory rewritten in place or replaced by a rename gets a new identity, so a
    # fixed version is retried while an unchanged broken one is not.
    stat = path.stat()
    return (stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns)


class ModelRegistry:
    """Holds the live Predictor and promotes newer verified versions."""

    def __init__(
        self,
        base_path: Path,
        model_name: str,
        metrics: ServiceMetrics,
        loader: Loader = Predictor.load,
    ) -> None:
        self.base_path = base_path
        self.model_name = model_name
        self._metrics = metrics
        self._loader = loader
        self._live: Predictor | None = None
        self._rejected: dict[int, _DirectoryIdentity] = {}
        self._reported_unready = False

    @property
    def live(self) -> Predictor | None:
        """The model serving right now, or None before the first verified load."""
        return self._live

    def require_live(self) -> Predictor:
        """The live model, or NotReadyError for the routes to report as 503."""
        live = self._live
        if live is None:
            raise NotReadyError()
        return live

    def score(self, texts: list[str]) -> tuple[npt.NDArray[np.float32], Predictor]:
        """Score with whichever version is live at call time (runs on the model thread)."""
        predictor = self.require_live()
        return predictor.predict_probabilities(texts), predictor

    def refresh(self) -> bool:
        """Promote the newest loadable version newer than the live one; True if swapped.

        Blocking (it loads TensorFlow graphs): run it in a thread, never on the event loop.
        """
        current = self._live.version if self._live is not None else -1
        for version, path in reversed(version_dirs(self.base_path)):
            if version <= current:
                break
            if self._is_known_broken(version, path):
                continue
            try:
                candidate = self._loader(path)
            except BrokenModelError as exc:
                self._reject(version, path, exc.message)
                continue
            except Exception as exc:  # a loader bug must not kill the watcher
                self._reject(version, path, f"unexpected {type(exc).__name__}")
                continue
            self._promote(candidate, previous=current)
            return True
        if self._live is None and not self._reported_unready:
            self._reported_unready = True  # once, not on every poll
            logger.error("no verified model version under %s; not ready", self.base_path)
        return False

    async def watch(
        self, interval_seconds: float, on_swap: Callable[[], None] | None = None
    ) -> None:
        """Poll the base directory forever, calling ``on_swap`` after each promotion."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                swapped = await asyncio.to_thread(self.refresh)
            except Exception:
                logger.exception("model directory scan failed; will retry")
                continue
            if swapped and on_swap is not None:
                on_swap()

    def _is_known_broken(self, version: int, path: Path) -> bool:
        known = self._rejected.get(version)
        if known is None:
            return False
        try:
            return known == _identity(path)
        except OSError:
            return True

    def _reject(self, version: int, path: Path, reason: str) -> None:
        try:
            self._rejected[version] = _identity(path)
        except OSError:
            self._rejected[version] = (0, 0, 0)
        self._metrics.reload_failures.inc()
        logger.error("model version %d refused, live version unchanged: %s", version, reason)

    def _promote(self, candidate: Predictor, previous: int) -> None:
        self._live = candidate  # the atomic swap: later batches use the candidate
        self._metrics.reload_successes.inc()
        self._metrics.set_live_model(self.model_name, candidate.version_label)
        if previous < 0:
            logger.info("serving model version %d", candidate.version)
        else:
            logger.info("model version %d replaced version %d", candidate.version, previous)
