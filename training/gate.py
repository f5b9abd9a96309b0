"""The promotion gate: a new version is published only if it is as good as what it replaces,
on every domain it is tested on.

A run scores the live (highest) version on the same test rows, in the same run, because the
figures in the live version's own card may come from other data (version 7's card has no
domains at all). The candidate must

* match the live version on **every domain**, each within its tolerance: the run's tolerance,
  or the domain's sampling noise where that is larger (a standard error of the live version's
  accuracy on that many rows: on 300 books reviews a 0.02 drop is noise, on 25,000 IMDB
  reviews it is not);
* be at least as good as the live version on the mean over the domains;
* match the better baseline of the same run on that mean, within the tolerance;
* be calibrated on every domain: its ECE above the floor that a perfectly calibrated model
  shows on that many rows (`training.metrics.ece_floor`) within `max_ece`.

A new model name has no live version; those checks then pass with nothing to beat. `--force`
publishes whatever the gate says, and the card records that it was forced.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
    """The version being served, scored on this run's test rows.

    `version` None: nothing is published under the name yet. `accuracy` None with a version:
    it could not be loaded, so it is not served either and there is nothing to beat.
    """

    version: int | None = None
    accuracy: float | None = None  # on all the test rows
    by_domain: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DomainFigures:
    """The candidate on one domain's test rows."""

    accuracy: float
    ece: float
    ece_floor: float
    rows: int


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


def domain_tolerance(tolerance: float, live_accuracy: float, rows: int) -> float:
    """The run's tolerance, or one standard error of the live accuracy on `rows`, if larger."""
    noise = math.sqrt(max(live_accuracy * (1.0 - live_accuracy), 0.0) / max(rows, 1))
    return max(tolerance, noise)


def _mean(values: Mapping[str, float]) -> float:
    return sum(values.values()) / len(values)


def _live_checks(
    domains: Mapping[str, DomainFigures], live: LiveVersion, tolerance: float
) -> list[GateCheck]:
    if live.accuracy is None:
        detail = (
            "no live version to beat (new model name)"
            if live.version is None
            else f"live version {live.version} could not be loaded, so it is not served"
        )
        return [GateCheck("live_version", True, detail)]
    checks = []
    for domain, figures in domains.items():
        theirs = live.by_domain[domain]
        allowed = domain_tolerance(tolerance, theirs, figures.rows)
        checks.append(
            GateCheck(
                f"live_version/{domain}",
                figures.accuracy >= theirs - allowed,
                f"{domain} test accuracy {figures.accuracy:.4f} vs live version {live.version}'s "
                f"{theirs:.4f} on the same {figures.rows} rows (tolerance {allowed:.4f})",
            )
        )
    ours = _mean({d: f.accuracy for d, f in domains.items()})
    theirs_mean = _mean({d: live.by_domain[d] for d in domains})
    checks.append(
        GateCheck(
            "live_version/mean",
            ours >= theirs_mean,
            f"mean test accuracy over {len(domains)} domains {ours:.4f} vs live version "
            f"{live.version}'s {theirs_mean:.4f} (at least as good)",
        )
    )
    return checks


def decide(
    domains: Mapping[str, DomainFigures],
    live: LiveVersion,
    baseline_means: Mapping[str, float],
    settings: GateSettings,
) -> GateDecision:
    """Every check, passed or not, so the card and the log can say which failed and by how much.

    `domains`: the candidate per domain; `baseline_means`: each baseline's mean accuracy over
    the same domains.
    """
    if not domains:
        raise ValueError("the gate needs the candidate's figures on at least one domain")
    tolerance = settings.tolerance
    checks = _live_checks(domains, live, tolerance)
    if baseline_means:
        ours = _mean({d: f.accuracy for d, f in domains.items()})
        best_name, best = max(baseline_means.items(), key=lambda item: item[1])
        checks.append(
            GateCheck(
                "baselines",
                ours >= best - tolerance,
                f"mean test accuracy over {len(domains)} domains {ours:.4f} vs best baseline "
                f"{best_name}'s {best:.4f} (tolerance {tolerance})",
            )
        )
    for domain, figures in domains.items():
        excess = figures.ece - figures.ece_floor
        checks.append(
            GateCheck(
                f"calibration/{domain}",
                excess <= settings.max_ece,
                f"{domain} test ECE {figures.ece:.4f}, {excess:+.4f} over the "
                f"{figures.ece_floor:.4f} a perfectly calibrated model shows on {figures.rows} "
                f"rows (bound {settings.max_ece})",
            )
        )
    return GateDecision(
        checks,
        forced=settings.force,
        settings={"tolerance": tolerance, "max_ece": settings.max_ece},
    )
