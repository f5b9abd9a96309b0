"""The promotion gate: every check reported, each failing when it should, --force overriding."""

from __future__ import annotations

from training.gate import GateSettings, LiveVersion, decide

BASELINES = {"tfidf_logreg": 0.90, "nbsvm": 0.91}


def _failed(accuracy: float, ece: float, live: LiveVersion, force: bool = False) -> set[str]:
    decision = decide(accuracy, ece, live, BASELINES, GateSettings(0.005, 0.03, force))
    assert decision.publish == (decision.passed or force)
    return {check.name for check in decision.failures()}


def test_a_candidate_as_good_as_the_live_version_and_the_best_baseline_passes() -> None:
    assert _failed(0.912, 0.01, LiveVersion(7, 0.915)) == set()


def test_each_check_fails_on_its_own() -> None:
    assert _failed(0.900, 0.01, LiveVersion(7, 0.915)) == {"live_version", "baselines"}
    assert _failed(0.930, 0.01, LiveVersion(7, 0.940)) == {"live_version"}
    assert _failed(0.920, 0.05, LiveVersion(7, 0.915)) == {"calibration"}


def test_nothing_live_or_a_broken_live_version_has_nothing_to_beat() -> None:
    assert _failed(0.92, 0.01, LiveVersion()) == set()
    decision = decide(0.92, 0.01, LiveVersion(3, None), BASELINES, GateSettings())
    (live,) = [check for check in decision.checks if check.name == "live_version"]
    assert live.passed and "could not be loaded" in live.detail


def test_force_publishes_what_the_gate_refuses_and_says_so() -> None:
    decision = decide(0.80, 0.10, LiveVersion(7, 0.915), BASELINES, GateSettings(force=True))
    assert not decision.passed and decision.publish
    recorded = decision.to_dict()
    assert recorded["forced"] is True and recorded["published"] is True
    assert {check["name"] for check in recorded["checks"] if not check["passed"]} == {
        "live_version",
        "baselines",
        "calibration",
    }
