"""Which model versions are loaded, which one a request gets, and how the set follows the directory.

A request names the version it wants with a ``VersionChoice`` (a number, a label, or neither)
and ``resolve`` turns it into a Predictor once, at the start of the request; that predictor
scores the whole request, whatever is loaded or unloaded meanwhile. An unknown model, version or
label is a ``ModelNotFoundError`` refinement, which each protocol words its own way.

What serves is decided by the settings (``app.core.policy``):

* the **policy** (``latest``, ``latest:N``, ``all``, ``specific:…``) picks the versions to load
  among those ``contract.version_dirs`` finds; a version that fails to load is skipped, so
  ``latest:N`` reaches down to the next one;
* the **labels** name loaded versions. ``stable`` is where unversioned requests go: the labelled
  version, or the highest loaded one when no ``stable`` is set. A labelled version (and the
  shadow version) stays loaded while the settings name it, whatever the policy says, so a
  label never dangles;
* the **canary split** (``app.core.routing``) sends its share of unversioned requests to
  ``canary``; it only exists when ``SENTIMENT_CANARY_PERCENT`` is above 0, so the default
  path costs what it always did.

What serves is one immutable ``Serving`` snapshot, replaced whole by one reference assignment
when the set changes, so the event loop reads a consistent view without a lock. ``start`` (the
first load) and ``refresh`` (every reload) apply the policy to the directory as it is: a new
version is loaded, verified and warmed beside the serving ones, and serves from the snapshot
that includes it; a version that leaves the policy leaves the snapshot at once, and the
requests that already hold it finish with it. It is released when the last of them lets go
(``UNLOADING`` until then): a finalizer reports it, so the owner can collect its memory, and no
request pays for any bookkeeping. ``start`` also checks what only the directory can tell
(labels on versions that are not loaded, a policy over the memory budget) and raises
``ConfigurationError`` rather than serving something else (``app.core.named_versions``).

A candidate is only read once its files stop changing, and a refused one is retried when they
change (``app.core.settling``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.core.errors import (
    BrokenModelError,
    NotReadyError,
    UnknownLabelError,
    UnknownModelError,
    UnknownVersionError,
)
from app.core.memory import MIB, MemoryBudget, mib, resident_bytes
from app.core.named_versions import listed, named_versions, require_loaded, require_on_disk
from app.core.policy import CANARY_LABEL, STABLE_LABEL
from app.core.predictor import Predictor
from app.core.routing import CanarySplit
from app.core.settling import TreeState, settled, tree_state
from app.metrics import ServiceMetrics
from app.settings import ConfigurationError, Settings
from contract import version_dirs

logger = logging.getLogger(__name__)

Loader = Callable[[Path], Predictor]
VersionState = Literal["LOADING", "AVAILABLE", "UNLOADING", "END"]
"""TF Serving's names for a version's state (``ModelVersionStatus.State``)."""


@dataclass(frozen=True, slots=True)
class VersionChoice:
    """Which version a request asks for: ``version`` or ``label``, or neither (the default)."""

    version: int | None = None
    label: str | None = None


DEFAULT_VERSION = VersionChoice()


@dataclass(frozen=True, slots=True)
class VersionStatus:
    """One version's state, and why it is not served when it failed (``END``)."""

    version: int
    state: VersionState
    error: str = ""


@dataclass(frozen=True, slots=True)
class Serving:
    """The versions serving now (highest first), what each label names, and the default."""

    versions: Mapping[int, Predictor]
    labels: Mapping[str, Predictor]
    default: Predictor | None


_NOTHING = Serving({}, {}, None)


class ModelRegistry:
    """Holds the serving versions and applies the version policy to the model directory."""

    def __init__(
        self, settings: Settings, metrics: ServiceMetrics, loader: Loader = Predictor.load
    ) -> None:
        self.base_path = settings.model_base_path
        self.model_name = settings.model_name
        self.policy = settings.model_version_policy
        self.labels = settings.model_version_labels
        self._named = named_versions(settings)  # checked by start
        self._pinned = settings.pinned_versions
        self._split = CanarySplit(settings.canary_percent) if settings.canary_percent > 0 else None
        budget = settings.memory_budget_mb
        self._budget = MemoryBudget(None if budget is None else budget * MIB)
        self._metrics = metrics
        self._loader = loader
        self._settle_seconds = settings.model_settle_seconds
        self._serving = _NOTHING
        self._lock = threading.Lock()  # one policy application at a time
        self._rejected: dict[int, tuple[int, str]] = {}  # version -> (fingerprint, why)
        self._loading: int | None = None
        self._unloading: dict[int, weakref.ref[Predictor]] = {}
        self._reported: set[tuple[str, int]] = set()  # (what, version) logged once
        self._reported_unready = False
        self.on_unloaded: Callable[[int], None] | None = None
        """Called (from any thread) when a version that left the policy has been released."""

    # Requests ---------------------------------------------------------------------------------

    @property
    def serving(self) -> Serving:
        """The versions serving now (one consistent snapshot)."""
        return self._serving

    @property
    def live(self) -> Predictor | None:
        """The version unversioned requests get (``stable``), or None before the first load."""
        return self._serving.default

    @property
    def reads_request_id(self) -> bool:
        """Whether ``resolve`` uses a request id (only to make the canary split sticky)."""
        return self._split is not None

    def resolve(
        self,
        choice: VersionChoice = DEFAULT_VERSION,
        model: str | None = None,
        request_id: str | None = None,
    ) -> Predictor:
        """The predictor that serves ``choice`` (of ``model``, when the request names one).

        Checked in this order: the model name, the label, readiness (NotReadyError while
        nothing is loaded), the version (a choice with both is the labelled version, if it
        has that number). An unversioned request goes to ``stable``, or to
        ``canary`` for the canary's share (sticky on ``request_id`` when there is one).
        """
        if model is not None and model != self.model_name:
            raise UnknownModelError()
        serving = self._serving
        label = choice.label
        if label is not None:
            if label != STABLE_LABEL and self.labels.get(label) is None:
                raise UnknownLabelError()
            labelled = serving.labels.get(label)
            if labelled is None:
                raise NotReadyError()
            if choice.version is not None and choice.version != labelled.version:
                raise UnknownVersionError(choice.version)  # no version has both
            return labelled
        default = serving.default
        if default is None:
            raise NotReadyError()
        if choice.version is not None:
            found = serving.versions.get(choice.version)
            if found is None:
                raise UnknownVersionError(choice.version)
            return found
        split = self._split
        if split is not None and split.takes(request_id):
            return serving.labels[CANARY_LABEL]
        return default

    def statuses(self) -> list[VersionStatus]:
        """Every version the service knows about, highest first: loading, serving, waiting for
        its last requests to be unloaded, or refused (with the reason)."""
        found: dict[int, VersionStatus] = {}
        # list(): one copy taken under the GIL, as the loading thread may add to these.
        for version, (_, reason) in list(self._rejected.items()):
            found[version] = VersionStatus(version, "END", reason)
        for version, reference in list(self._unloading.items()):
            if reference() is not None:
                found[version] = VersionStatus(version, "UNLOADING")
        loading = self._loading
        if loading is not None:
            found[loading] = VersionStatus(loading, "LOADING")
        for version in self._serving.versions:
            found[version] = VersionStatus(version, "AVAILABLE")
        return [found[version] for version in sorted(found, reverse=True)]

    # Loading ----------------------------------------------------------------------------------

    def start(self) -> None:
        """The first load: apply the policy, then check that every version the settings name
        is loaded. ConfigurationError (before loading anything where the directory alone
        shows it) when a label names a version that is not loaded, or the policy does not fit
        the memory budget. Blocking: run it in a thread."""
        with self._lock:
            on_disk = dict(version_dirs(self.base_path))
            require_on_disk(self._named, on_disk, self.policy, self.base_path)
            self._apply(starting=True)
            require_loaded(self._named, self._serving.versions, self._rejected, self.policy)

    def refresh(self) -> bool:
        """Apply the policy to the directory as it is now; True if what serves changed.

        Blocking (it loads TensorFlow graphs): run it in a thread, never on the event loop.
        """
        with self._lock:
            return self._apply(starting=False)

    async def watch(
        self, interval_seconds: float, on_change: Callable[[], None] | None = None
    ) -> None:
        """Poll the base directory forever, calling ``on_change`` after each change."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                changed = await asyncio.to_thread(self.refresh)
            except Exception:
                logger.exception("model directory scan failed; will retry")
                continue
            if changed and on_change is not None:
                on_change()

    def _apply(self, *, starting: bool) -> bool:
        on_disk = dict(version_dirs(self.base_path))
        self._rejected = {v: why for v, why in self._rejected.items() if v in on_disk}
        serving = self._serving.versions
        candidates = self.policy.candidates(list(on_disk))
        limit = self.policy.limit
        # What the budget must make room for: the versions still to load when all load.
        to_load = len([v for v in self.policy.expected(list(on_disk)) if v not in serving])
        self._report_missing(on_disk)
        kept: dict[int, Predictor] = {}
        added: list[Predictor] = []
        for version in candidates:
            if limit is not None and len(kept) >= limit:
                break
            current = serving.get(version)
            if current is None:
                current = self._load(version, on_disk[version], max(to_load, 1), starting)
                to_load -= 1
                if current is not None:
                    added.append(current)
            if current is not None:
                kept[version] = current
        for version in self._pinned:
            if version in serving and version not in kept:
                kept[version] = serving[version]
                self._report_once(
                    "pinned",
                    version,
                    "model version %d left the policy but stays loaded: the settings name it",
                    level=logging.WARNING,
                )
        retired = [predictor for version, predictor in serving.items() if version not in kept]
        if not added and not retired:
            if not kept and not self._reported_unready:
                self._reported_unready = True  # once, not on every poll
                logger.error("no verified model version under %s; not ready", self.base_path)
            return False
        self._publish(kept)
        for predictor in retired:
            self._retire(predictor)
        return True

    def _load(
        self, version: int, path: Path, versions_to_load: int, starting: bool
    ) -> Predictor | None:
        """Load, verify, warm and measure one version; None when it is not loaded now."""
        state = self._settled_state(version, path)
        if state is None:
            return None
        shortfall = self._budget.shortfall(versions_to_load)
        if shortfall is not None:
            self._over_budget(version, shortfall, starting)
            return None
        before = resident_bytes()
        self._loading = version
        try:
            candidate = self._loader(path)
        except BrokenModelError as exc:
            self._reject(version, state, exc.message)
            return None
        except Exception as exc:  # a loader bug must not kill the watcher
            self._reject(version, state, f"unexpected {type(exc).__name__}")
            return None
        finally:
            self._loading = None
        after = resident_bytes()
        if before is not None and after is not None:
            candidate.memory_bytes = max(after - before, 0)
            self._budget.record(version, candidate.memory_bytes)
            logger.info("model version %d adds %s resident memory", version, mib(after - before))
        overrun = self._budget.overrun()
        if overrun is not None:
            self._over_budget(version, overrun, starting)
            return None
        self._rejected.pop(version, None)
        self._metrics.reload_successes.inc()
        return candidate

    def _over_budget(self, version: int, why: str, starting: bool) -> None:
        if starting:
            raise ConfigurationError(
                f"SENTIMENT_MODEL_VERSION_POLICY={self.policy} does not fit the memory budget: "
                f"{why}. Serve fewer versions (latest:N) or raise the budget."
            )
        if self._report_once("budget", version, "model version %d not loaded: " + why):
            self._metrics.reload_failures.inc()

    def _publish(self, kept: dict[int, Predictor]) -> None:
        """Make ``kept`` what serves: one new snapshot, swapped in by one assignment."""
        versions = {version: kept[version] for version in sorted(kept, reverse=True)}
        labels = {name: versions[v] for name, v in self.labels if v in versions}
        default = labels.get(STABLE_LABEL) or next(iter(versions.values()), None)
        if default is not None:
            labels.setdefault(STABLE_LABEL, default)
        previous = set(self._serving.versions)
        self._serving = Serving(versions, labels, default)  # the atomic swap
        self._metrics.set_served_models(
            self.model_name, [p.version_label for p in versions.values()]
        )
        if versions and set(versions) != previous:
            logger.info(
                "serving model versions %s (unversioned requests: version %s)",
                listed(versions),
                default.version if default is not None else "none",
            )

    def _retire(self, predictor: Predictor) -> None:
        """Stop resolving ``predictor``; it is released once the requests holding it finish."""
        version = predictor.version
        self._unloading[version] = weakref.ref(predictor)
        # Not at interpreter exit: a version still held then was never unloaded.
        weakref.finalize(predictor, self._released, version).atexit = False
        logger.info(
            "model version %d left the policy; unloading it after its last request", version
        )

    def _released(self, version: int) -> None:
        """A retired version was garbage-collected (any thread: whichever let go last)."""
        reference = self._unloading.get(version)
        if reference is not None and reference() is None:
            del self._unloading[version]
        logger.info("model version %d unloaded", version)
        hook = self.on_unloaded
        if hook is not None:
            hook(version)

    def _report_missing(self, on_disk: Mapping[int, Path]) -> None:
        if self.policy.kind != "specific":
            return
        for version in self.policy.versions:
            if version not in on_disk:
                self._report_once(
                    "missing",
                    version,
                    f"model version %d is named by SENTIMENT_MODEL_VERSION_POLICY={self.policy} "
                    f"but is not under {self.base_path}",
                )

    def _report_once(
        self, what: str, version: int, message: str, level: int = logging.ERROR
    ) -> bool:
        """Log ``message`` (with ``version``) the first time only; True if logged now."""
        if (what, version) in self._reported:
            return False
        self._reported.add((what, version))
        logger.log(level, message, version)
        return True

    def _settled_state(self, version: int, path: Path) -> TreeState | None:
        """The candidate's state if it should be loaded now; None to skip it this time.

        Skipped: a version refused before and unchanged since, and (while versions serve) one
        whose files changed less than ``settle_seconds`` ago and are still changing after
        waiting out the rest of that time (blocking: this runs on the watcher's thread).
        """
        try:
            state = tree_state(path)
            rejected = self._rejected.get(version)
            if rejected is not None and rejected[0] == state.fingerprint:
                return None
            if not self._serving.versions:
                return state
            quiet = settled(path, state, self._settle_seconds)
        except OSError:
            return None  # vanished or unreadable mid-scan: look again next time
        if quiet is None:
            logger.info("model version %d is still being written; will retry", version)
        return quiet

    def _reject(self, version: int, state: TreeState, reason: str) -> None:
        self._rejected[version] = (state.fingerprint, reason)
        self._metrics.reload_failures.inc()
        logger.error(
            "model version %d refused (the versions serving are unchanged): %s", version, reason
        )
