"""The promotion gate: every check reported, per domain, each failing when it should, --force
overriding."""

from __future__ import annotations

import pytest

from training.gate import DomainFigures, GateSettings, LiveVersion, decide, domain_tolerance

BASELINES = {"tfidf_logreg": 0.85, "nbsvm": 0.84}
ROWS = {"movie": 25_000, "product": 7_000, "books": 300}
LIVE = LiveVersion(7, 0.90, {"movie": 0.915, "product": 0.80, "books": 0.85})


def _domains(**accuracy: float) -> dict[str, DomainFigures]:
    return {d: DomainFigures(a, 0.02, 0.01, ROWS[d]) for d, a in accuracy.items()}


def _failed(
    domains: dict[str, DomainFigures], live: LiveVersion = LIVE, force: bool = False
) -> set[str]:
    decision = decide(domains, live, BASELINES, GateSettings(0.005, 0.03, force))
    assert decision.publish == (decision.passed or force)
    return {check.name for check in decision.failures()}


def test_a_candidate_as_good_as_the_live_version_everywhere_passes() -> None:
    assert _failed(_domains(movie=0.913, product=0.91, books=0.86)) == set()


def test_worse_on_one_domain_while_better_on_average_is_refused_and_force_publishes_it() -> None:
    candidate = _domains(movie=0.90, product=0.93, books=0.90)  # mean 0.91 > live's 0.855
    assert _failed(candidate) == {"live_version/movie"}
    decision = decide(candidate, LIVE, BASELINES, GateSettings(force=True))
    assert not decision.passed and decision.publish
    recorded = decision.to_dict()
    assert recorded["forced"] is True and recorded["published"] is True
    (movie,) = [c for c in recorded["checks"] if c["name"] == "live_version/movie"]
    assert "0.9000 vs live version 7's 0.9150 on the same 25000 rows" in movie["detail"]


def test_a_small_domain_is_held_to_its_sampling_noise_and_the_mean_to_the_live_one() -> None:
    # 300 rows: one standard error at 0.85 is 0.0206, so 0.835 is within it, 0.82 is not.
    assert domain_tolerance(0.005, 0.85, 300) == pytest.approx(0.0206, abs=1e-4)
    assert domain_tolerance(0.005, 0.915, 25_000) == 0.005
    assert _failed(_domains(movie=0.915, product=0.84, books=0.835)) == set()
    assert _failed(_domains(movie=0.915, product=0.84, books=0.82)) == {"live_version/books"}
    # Each domain within its tolerance, but the mean below the live version's.
    assert _failed(_domains(movie=0.911, product=0.797, books=0.84)) == {"live_version/mean"}


def test_the_mean_is_compared_with_the_best_baseline_and_ece_above_its_floor() -> None:
    nothing_live = LiveVersion()
    assert _failed(_domains(movie=0.84, product=0.84, books=0.84), nothing_live) == {"baselines"}
    small = {"books": DomainFigures(0.9, 0.07, 0.045, 300)}  # 0.025 above its floor
    assert _failed(small, nothing_live) == set()
    small = {"books": DomainFigures(0.9, 0.09, 0.045, 300)}
    assert _failed(small, nothing_live) == {"calibration/books"}


def test_nothing_live_or_a_broken_live_version_has_nothing_to_beat() -> None:
    candidate = _domains(movie=0.90, product=0.90, books=0.90)
    assert _failed(candidate, LiveVersion()) == set()
    decision = decide(candidate, LiveVersion(3, None), BASELINES, GateSettings())
    (live,) = [check for check in decision.checks if check.name == "live_version"]
    assert live.passed and "could not be loaded" in live.detail
