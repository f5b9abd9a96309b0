"""The promotion gate: a new version is published only if it is as good as what it replaces.

A run scores the live (highest) version on the same test split, in the same run, because the
figures in the live version's own card may come from other data. The candidate must match the
live version and the better baseline within `tolerance`, and be calibrated within `max_ece`.
A new model name has no live version; that check then passes with nothing to beat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_TOLERANCE = 0.005
DEFAULT_MAX_ECE = 0.03


@dataclass(frozen=True)
class GateSettings:
    """How much worse than the live version and the best baseline a candidate may be, and
    whether to publish it anyway (`force`)."""

    tolerance: float = DEFAULT_TOLERANCE
    max_ece: float = DEFAULT_MAX_ECE
    force: bool = False


class GateRefused(RuntimeError):
    """The promotion gate refused the new version; nothing was published."""


@dataclass(frozen=True)
class LiveVersion:
    """The version being served, scored on this run's test split.

    `version` None: nothing is published under the name yet. `accuracy` None with a version:
    it could not be loaded, so it is not served either and there is nothing to beat.
    """

    version: int | None = None
    accuracy: float | None = None


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateDecision:
    checks: list[GateCheck]
    forced: bool = False
    settings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def publish(self) -> bool:
        return self.passed or self.forced

    def failures(self) -> list[GateCheck]:
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "forced": self.forced,
            "published": self.publish,
            "settings": self.settings,
            "checks": [asdict(check) for check in self.checks],
        }


def decide(
    accuracy: float,
    ece: float,
    live: LiveVersion,
    baseline_accuracies: dict[str, float],
    settings: GateSettings,
) -> GateDecision:
    """Every check, passed or not, so the card and the log can say which failed and by how much."""
    tolerance = settings.tolerance
    checks = []
    if live.accuracy is None:
        detail = (
            "no live version to beat (new model name)"
            if live.version is None
            else f"live version {live.version} could not be loaded, so it is not served"
        )
        checks.append(GateCheck("live_version", True, detail))
    else:
        checks.append(
            GateCheck(
                "live_version",
                accuracy >= live.accuracy - tolerance,
                f"test accuracy {accuracy:.4f} vs live version {live.version}'s "
                f"{live.accuracy:.4f} on the same split (tolerance {tolerance})",
            )
        )
    if baseline_accuracies:
        best_name, best = max(baseline_accuracies.items(), key=lambda item: item[1])
        checks.append(
            GateCheck(
                "baselines",
                accuracy >= best - tolerance,
                f"test accuracy {accuracy:.4f} vs best baseline {best_name}'s {best:.4f} "
                f"(tolerance {tolerance})",
            )
        )
    checks.append(
        GateCheck(
            "calibration",
            ece <= settings.max_ece,
            f"test ECE {ece:.4f} (bound {settings.max_ece})",
        )
    )
    return GateDecision(
        checks,
        forced=settings.force,
        settings={"tolerance": tolerance, "max_ece": settings.max_ece},
    )
