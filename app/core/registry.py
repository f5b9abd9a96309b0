"""Which model version is live, which one a request gets, and how a newer one replaces it.

A request names the version it wants with a ``VersionChoice`` (a number, a label, or neither)
and ``resolve`` turns it into a Predictor once, at the start of the request; that predictor
scores the whole request, whatever is swapped in meanwhile. Today one version is loaded (the
highest verified one) and the one label, ``stable``, names it; an unknown model, version or
label is a ``ModelNotFoundError`` refinement, which each protocol words its own way.

Versions are what ``contract.version_dirs`` finds under the base path. A candidate is
loaded, verified and warmed beside the live model, then swapped in with one reference
assignment, so every batch is scored entirely by one version and reports that version.
A broken candidate is logged once, remembered, and the live version keeps serving.

Publishing should be atomic (write elsewhere, rename into place), but a version copied in
place must not be read half-written nor be refused for good. So a candidate is remembered by
a fingerprint of its whole tree (every file's size, mtime and ctime, not only the top
directory, which finishing a file inside ``variables/`` does not change): a refused version
is retried as soon as anything under it changes. And while a version is live, a candidate is
only loaded once nothing under it has changed for ``settle_seconds`` (by ctime, which the
kernel sets, so copies that preserve old mtimes are seen too). With nothing live yet (start
up) a candidate is tried at once: serving sooner matters more, and a half-written one is
refused and retried when its files change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from app.core.errors import (
    BrokenModelError,
    NotReadyError,
    UnknownLabelError,
    UnknownModelError,
    UnknownVersionError,
)
from app.core.predictor import Predictor
from app.metrics import ServiceMetrics
from contract import version_dirs

logger = logging.getLogger(__name__)

Loader = Callable[[Path], Predictor]

LABELS = ("stable",)
"""Version labels (TF Serving's ``version_labels``); each names the live version today."""


@dataclass(frozen=True, slots=True)
class VersionChoice:
    """Which version a request asks for: ``version`` or ``label``, or neither (the default)."""

    version: int | None = None
    label: str | None = None


DEFAULT_VERSION = VersionChoice()


class TreeState(NamedTuple):
    """What a version directory looks like now: its fingerprint and its newest change."""

    fingerprint: int
    newest_change_ns: int


def tree_state(path: Path) -> TreeState:
    """Fingerprint every entry under ``path`` (name, size, mtime, ctime) and the top inode.

    Raises OSError if the directory disappears while it is read.
    """
    top = path.stat()
    entries: list[tuple[str, int, int, int]] = []
    newest = top.st_ctime_ns
    for entry in sorted(path.rglob("*")):
        stat = entry.lstat()
        entries.append((str(entry), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns))
        newest = max(newest, stat.st_ctime_ns)
    return TreeState(hash((top.st_ino, top.st_ctime_ns, tuple(entries))), newest)


class ModelRegistry:
    """Holds the live Predictor and promotes newer verified versions."""

    def __init__(
        self,
        base_path: Path,
        model_name: str,
        metrics: ServiceMetrics,
        loader: Loader = Predictor.load,
        settle_seconds: float = 0.0,
    ) -> None:
        self.base_path = base_path
        self.model_name = model_name
        self._metrics = metrics
        self._loader = loader
        self._live: Predictor | None = None
        self._settle_seconds = settle_seconds
        self._rejected: dict[int, int] = {}  # version -> fingerprint when it was refused
        self._reported_unready = False

    @property
    def live(self) -> Predictor | None:
        """The model serving right now, or None before the first verified load."""
        return self._live

    def resolve(
        self, choice: VersionChoice = DEFAULT_VERSION, model: str | None = None
    ) -> Predictor:
        """The predictor that serves ``choice`` (of ``model``, when the request names one).

        Checked in this order: the model name, the label, readiness (NotReadyError while no
        version is live), the version.
        """
        if model is not None and model != self.model_name:
            raise UnknownModelError()
        if choice.label is not None and choice.label not in LABELS:
            raise UnknownLabelError()
        live = self._live
        if live is None:
            raise NotReadyError()
        if choice.version is not None and choice.version != live.version:
            raise UnknownVersionError(choice.version)
        return live

    def refresh(self) -> bool:
        """Promote the newest loadable version newer than the live one; True if swapped.

        Blocking (it loads TensorFlow graphs): run it in a thread, never on the event loop.
        """
        current = self._live.version if self._live is not None else -1
        for version, path in reversed(version_dirs(self.base_path)):
            if version <= current:
                break
            state = self._settled_state(version, path)
            if state is None:
                continue
            try:
                candidate = self._loader(path)
            except BrokenModelError as exc:
                self._reject(version, state, exc.message)
                continue
            except Exception as exc:  # a loader bug must not kill the watcher
                self._reject(version, state, f"unexpected {type(exc).__name__}")
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

    def _settled_state(self, version: int, path: Path) -> TreeState | None:
        """The candidate's state if it should be loaded now; None to skip it this time.

        Skipped: a version refused before and unchanged since, and (while a version is live)
        one whose files changed less than ``settle_seconds`` ago and are still changing after
        waiting out the rest of that time (blocking: this runs on the watcher's thread).
        """
        try:
            state = tree_state(path)
            if self._rejected.get(version) == state.fingerprint:
                return None
            if self._live is None or self._settle_seconds <= 0:
                return state
            quiet_for = (time.time_ns() - state.newest_change_ns) / 1e9
            if quiet_for >= self._settle_seconds:
                return state
            time.sleep(self._settle_seconds - quiet_for)
            settled = tree_state(path)
        except OSError:
            return None  # vanished or unreadable mid-scan: look again next time
        if settled.fingerprint != state.fingerprint:
            logger.info("model version %d is still being written; will retry", version)
            return None
        return settled

    def _reject(self, version: int, state: TreeState, reason: str) -> None:
        self._rejected[version] = state.fingerprint
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
