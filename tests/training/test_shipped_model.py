"""The model committed under model/ is intact, accurate as claimed, and scores the obvious right."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract import CARD_FILE
from tests.training.conftest import SHIPPED_MODEL_BASE
from training import export as export_lib
from training import publish as publish_lib
from training.behavioural import BEHAVIOUR_DIR, KINDS, BehaviouralText, load_set

logger = logging.getLogger(__name__)

# The set written alongside the model up to version 7, and the only one v7's card reports.
WRITTEN_2026_11 = BEHAVIOUR_DIR / "written_2026_11.jsonl"

CLEARLY_POSITIVE = [
    "One of the best films I have ever seen. Brilliant acting, a beautiful story and a wonderful "
    "score; I loved every minute and will watch it again.",
    "A masterpiece. Superb performances, excellent direction, and a moving, funny, perfect script.",
]
CLEARLY_NEGATIVE = [
    "The worst movie I have ever seen. Terrible acting, awful dialogue, a boring plot and a "
    "complete waste of time and money.",
    "Awful, stupid and boring. The script is horrible and the acting is even worse. Avoid it.",
]


def _card(version: Path) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((version / CARD_FILE).read_text())
    return card


def _versions_with_preset(versions: list[Path], preset: str) -> list[Path]:
    return [v for v in versions if _card(v)["preset"] == preset]


def _rows() -> list[BehaviouralText]:
    return load_set(WRITTEN_2026_11).texts


def kind_as_v7_recorded_it(row: BehaviouralText) -> str:
    """Cards up to version 7 used finer kinds, now a kind plus its optional facts."""
    if row.kind == "negation":
        return str(row.subkind)
    return {"intensity": "intensifier_hedge", "domain": "other_domain"}.get(row.kind, row.kind)


@pytest.fixture(scope="module")
def behavioural_set() -> tuple[list[str], np.ndarray]:
    rows = _rows()
    return [r.text for r in rows], np.array([r.label for r in rows], dtype=np.float64)


def behavioural_score(version: Path, texts: list[str], labels: np.ndarray) -> tuple[float, float]:
    """Accuracy and mean confidence (mean of max(p, 1 - p)) on the hand-written set."""
    probabilities = export_lib.served_probabilities(version, texts)
    accuracy = float(np.mean((probabilities >= 0.5) == (labels == 1)))
    confidence = float(np.mean(np.maximum(probabilities, 1 - probabilities)))
    return accuracy, confidence


@pytest.fixture(scope="module")
def shipped_versions() -> list[Path]:
    versions = publish_lib.existing_versions(SHIPPED_MODEL_BASE)
    assert versions, f"no model is shipped under {SHIPPED_MODEL_BASE}"
    return [SHIPPED_MODEL_BASE / str(v) for v in versions]


def test_every_shipped_version_replays_its_recorded_samples(shipped_versions: list[Path]) -> None:
    for version in shipped_versions:
        card = json.loads((version / CARD_FILE).read_text())
        assert card["version"] == int(version.name)
        served = export_lib.served_probabilities(version, [s["text"] for s in card["samples"]])
        np.testing.assert_allclose(served, [s["probability"] for s in card["samples"]], atol=1e-5)


def test_clear_reviews_land_on_the_right_side(shipped_versions: list[Path]) -> None:
    served = export_lib.served_probabilities(
        shipped_versions[-1], CLEARLY_POSITIVE + CLEARLY_NEGATIVE
    )
    assert np.all((served >= 0) & (served <= 1))
    assert np.all(served[: len(CLEARLY_POSITIVE)] > 0.5)
    assert np.all(served[len(CLEARLY_POSITIVE) :] < 0.5)


def test_tutorial_version_meets_the_accuracy_bar(shipped_versions: list[Path]) -> None:
    card = json.loads((shipped_versions[0] / CARD_FILE).read_text())
    assert card["metrics"]["test"]["examples"] == 25_000
    assert card["metrics"]["test"]["accuracy"] >= 0.86


def test_behavioural_set_is_balanced_short_tagged_and_big_enough(
    behavioural_set: tuple[list[str], np.ndarray],
) -> None:
    texts, labels = behavioural_set
    assert len(texts) == 314 and len(set(texts)) == len(texts)
    kinds = [row.kind for row in _rows()]
    assert set(kinds) == set(KINDS)
    assert all(kinds.count(kind) >= 25 for kind in KINDS)
    subkinds = [row.subkind for row in _rows() if row.kind == "negation"]
    assert subkinds.count("negated_negative") >= 25 and subkinds.count("negated_positive") >= 25
    assert labels.sum() == len(labels) / 2
    assert max(len(t.split()) for t in texts) <= 20, "one clause to two sentences"


def test_newest_version_gets_the_behavioural_set_right_and_is_honest_about_it(
    shipped_versions: list[Path],
    behavioural_set: tuple[list[str], np.ndarray],
    record_property: Any,
) -> None:
    accuracy, confidence = behavioural_score(shipped_versions[-1], *behavioural_set)
    record_property("behavioural_accuracy", accuracy)
    record_property("behavioural_mean_confidence", confidence)
    logger.info("newest: behavioural accuracy %.3f, confidence %.3f", accuracy, confidence)
    assert accuracy >= 0.90
    assert confidence <= accuracy + 0.05, "short texts must not be scored overconfidently"


def test_tutorial_behavioural_score_is_measured_for_comparison(
    shipped_versions: list[Path],
    behavioural_set: tuple[list[str], np.ndarray],
    record_property: Any,
) -> None:
    """Recorded, not asserted high: the tutorial's weakness on short texts is the point."""
    tutorial = _versions_with_preset(shipped_versions, "tutorial")
    assert tutorial, "the tutorial version stays shipped for comparison"
    accuracy, confidence = behavioural_score(tutorial[0], *behavioural_set)
    record_property("tutorial_behavioural_accuracy", accuracy)
    record_property("tutorial_behavioural_mean_confidence", confidence)
    logger.info("tutorial: behavioural accuracy %.3f, confidence %.3f", accuracy, confidence)
    assert 0.0 < accuracy <= 1.0


def test_default_version_meets_its_targets(shipped_versions: list[Path]) -> None:
    default = _versions_with_preset(shipped_versions, "default")
    assert default, "a default-preset version is shipped"
    card = _card(default[-1])
    test = card["metrics"]["test"]
    assert test["examples"] == 25_000 and card["data"]["limit"] is None
    assert test["accuracy"] >= 0.89
    assert test["ece"] <= 0.02
    assert card["calibration"]["method"] in {"temperature", "length", "length_power"}
    # The length-aware temperature exists for short texts: held-out snippets must gain the most.
    snippets = card["metrics"]["validation_snippets"]
    assert snippets["ece"] < snippets["ece_uncalibrated"] / 2


def test_newest_default_per_kind_and_against_its_baselines(
    shipped_versions: list[Path], behavioural_set: tuple[list[str], np.ndarray]
) -> None:
    """The issue's targets on the newest default, recomputed from the export where they can be.

    Behavioural: 95% overall and >= 90% on every kind. IMDB test accuracy: >= 0.915 and above
    both baselines of the same run (version 7: 0.9152 against NBSVM 0.9143, TF-IDF 0.9083).
    """
    newest = shipped_versions[-1]
    card = _card(newest)
    assert card["preset"] == "default" and card["version"] >= 7
    texts, labels = behavioural_set
    probabilities = export_lib.served_probabilities(newest, texts)
    correct = (probabilities >= 0.5) == (labels == 1)
    assert correct.mean() >= 0.95
    kinds = np.array([row.kind for row in _rows()])
    by_kind = {kind: float(correct[kinds == kind].mean()) for kind in KINDS}
    for kind in KINDS:
        assert by_kind[kind] >= 0.90, (kind, by_kind[kind])
    # The card's figures for this set, recomputed from the export, agree. Cards up to version 7
    # have one set, recorded under the finer kinds of their day; later ones report each set.
    behaviour = card["behavioural"]
    if "sets" in behaviour:
        recorded, recomputed = behaviour["sets"][WRITTEN_2026_11.stem]["by_kind"], by_kind
    else:
        recorded = behaviour["by_kind"]
        v7_kinds = np.array([kind_as_v7_recorded_it(row) for row in _rows()])
        recomputed = {kind: float(correct[v7_kinds == kind].mean()) for kind in set(v7_kinds)}
    assert {kind: recorded[kind]["accuracy"] for kind in recorded} == pytest.approx(
        recomputed, abs=1e-4
    )
    # The same run's baselines are in the card; the model beats both.
    accuracy = card["metrics"]["test"]["accuracy"]
    assert accuracy >= 0.915
    for baseline in card["baselines"].values():
        assert accuracy > baseline["test_accuracy"], baseline["description"]
    assert card["gate"]["passed"] is True and card["gate"]["live_version"] == card["version"] - 1
    # Calibration that holds at every length: T(n) > 0, monotone, and ECE within the issue's
    # bounds on both splits (0.02 on test reviews, 0.03 on short validation snippets).
    calibration = card["calibration"]
    assert calibration["a"] > 0 and calibration["b"] >= 0 and 0 < calibration["power"] <= 1
    assert card["metrics"]["test"]["ece"] <= 0.02
    assert card["metrics"]["validation_snippets"]["ece"] <= 0.03
