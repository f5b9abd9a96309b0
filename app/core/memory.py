"""What the loaded versions cost in memory, and the budget they must fit in.

Every worker loads its own copy of every version the policy serves, so the cost of a policy
is paid once per worker. It is measured, not guessed from the files: a version's cost is the
growth of this process's resident memory while it loads (its graph, its vocabulary tables,
its warm-up), which depends on far more than its size on disk.

With ``SENTIMENT_MEMORY_BUDGET_MB`` set, the registry asks ``MemoryBudget`` before each load
whether the versions still to load fit: at start-up a policy that would not fit stops the
service with a clear message (rather than an out-of-memory kill later), and on a reload a new
version that would not fit is not loaded. Before the first load nothing is known, so the
first version is loaded and measured; every projection after it uses the dearest version
measured so far in this process.

``python -m app.core.memory [BASE] [VERSION ...]`` loads versions one after another in one
fresh process, as a worker does, and prints what each cost (docs/operations.md quotes it).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024
_STATM = Path("/proc/self/statm")  # size, resident, ... in pages


def resident_bytes() -> int | None:
    """This process's resident set size now (Linux ``/proc``), or None where unknown."""
    try:
        pages = int(_STATM.read_bytes().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def mib(size: int) -> str:
    """``size`` bytes as whole MiB, for messages."""
    return f"{round(size / MIB)} MiB"


@dataclass(slots=True)
class MemoryBudget:
    """The per-worker budget (None: none) and the costs measured against it."""

    limit_bytes: int | None
    dearest_version_bytes: int = 0
    measured: dict[int, int] = field(default_factory=dict)

    def record(self, version: int, cost_bytes: int) -> None:
        """Remember what loading ``version`` cost this process."""
        self.measured[version] = cost_bytes
        self.dearest_version_bytes = max(self.dearest_version_bytes, cost_bytes)

    def shortfall(self, versions_to_load: int) -> str | None:
        """Why ``versions_to_load`` more versions would not fit, or None if they would (or no
        budget is set, or nothing is measured yet)."""
        if self.limit_bytes is None or not self.measured or versions_to_load <= 0:
            return None
        now = resident_bytes()
        if now is None:
            return None
        projected = now + versions_to_load * self.dearest_version_bytes
        if projected <= self.limit_bytes:
            return None
        return (
            f"{versions_to_load} more version(s) at up to {mib(self.dearest_version_bytes)} "
            f"each (the dearest measured here) would take this worker from {mib(now)} to "
            f"about {mib(projected)}, over SENTIMENT_MEMORY_BUDGET_MB="
            f"{self.limit_bytes // MIB}"
        )

    def overrun(self) -> str | None:
        """Why the worker is already over budget, or None."""
        now = resident_bytes()
        if self.limit_bytes is None or now is None or now <= self.limit_bytes:
            return None
        return (
            f"this worker holds {mib(now)} with its versions loaded, over "
            f"SENTIMENT_MEMORY_BUDGET_MB={self.limit_bytes // MIB}"
        )


def _measure(base: Path, versions: list[int]) -> None:
    """Load ``versions`` of ``base`` one after another and print what each cost."""
    from app.core.predictor import Predictor  # deferred: the CLI only
    from app.process import configure_tensorflow_threads, quiet_tensorflow
    from app.settings import Settings

    settings = Settings()
    quiet_tensorflow(settings.log_level)
    start = resident_bytes() or 0
    configure_tensorflow_threads(settings)
    imported = resident_bytes() or 0
    out = sys.stdout
    out.write(f"process before TensorFlow: {mib(start)}; after importing it: {mib(imported)}\n")
    out.write("version | on disk | resident memory it added | worker after it\n")
    kept: list[Predictor] = []
    for version in versions:
        path = base / str(version)
        before = resident_bytes() or 0
        kept.append(Predictor.load(path))
        after = resident_bytes() or 0
        on_disk = sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())
        out.write(f"{version} | {on_disk / MIB:.1f} MiB | {mib(after - before)} | {mib(after)}\n")


if __name__ == "__main__":
    from contract import version_dirs

    arguments = sys.argv[1:]
    base_path = Path(arguments[0]) if arguments else Path("model/sentiment")
    chosen = [int(argument) for argument in arguments[1:]]
    _measure(base_path, chosen or [version for version, _ in reversed(version_dirs(base_path))])
