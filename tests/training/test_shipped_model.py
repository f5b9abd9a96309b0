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
IMDB_VERSION = 7  # the last version trained on IMDB alone
MIX_DOMAINS = {"books", "dvd", "food", "movie", "product", "service", "social"}
SHORT_TEXT_DOMAINS = {"food", "product", "service", "social"}

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


def _version(shipped_versions: list[Path], number: int) -> Path:
    found = [v for v in shipped_versions if v.name == str(number)]
    assert found, f"version {number} stays published"
    return found[0]


def test_imdb_version_meets_its_targets(shipped_versions: list[Path]) -> None:
    """Version 7, the last model trained on IMDB alone, stays published for comparison."""
    card = _card(_version(shipped_versions, IMDB_VERSION))
    test = card["metrics"]["test"]
    assert card["preset"] == "default"
    assert test["examples"] == 25_000 and card["data"]["limit"] is None
    assert test["accuracy"] >= 0.89
    assert test["ece"] <= 0.02
    assert card["calibration"]["method"] in {"temperature", "length", "length_power"}
    # The length-aware temperature exists for short texts: held-out snippets must gain the most.
    snippets = card["metrics"]["validation_snippets"]
    assert snippets["ece"] < snippets["ece_uncalibrated"] / 2


def test_imdb_version_per_kind_and_against_its_baselines(
    shipped_versions: list[Path], behavioural_set: tuple[list[str], np.ndarray]
) -> None:
    """Issue 10's targets on version 7, recomputed from the export where they can be.

    Behavioural (the set written with it): 95% overall and >= 90% on every kind. IMDB test
    accuracy: >= 0.915 and above both baselines of the same run.
    """
    version = _version(shipped_versions, IMDB_VERSION)
    card = _card(version)
    texts, labels = behavioural_set
    probabilities = export_lib.served_probabilities(version, texts)
    correct = (probabilities >= 0.5) == (labels == 1)
    assert correct.mean() >= 0.95
    kinds = np.array([row.kind for row in _rows()])
    by_kind = {kind: float(correct[kinds == kind].mean()) for kind in KINDS}
    for kind in KINDS:
        assert by_kind[kind] >= 0.90, (kind, by_kind[kind])
    # The card's figures for this set, recomputed from the export, agree (recorded under the
    # finer kinds of its day).
    recorded = card["behavioural"]["by_kind"]
    v7_kinds = np.array([kind_as_v7_recorded_it(row) for row in _rows()])
    recomputed = {kind: float(correct[v7_kinds == kind].mean()) for kind in set(v7_kinds)}
    assert {kind: recorded[kind]["accuracy"] for kind in recorded} == pytest.approx(
        recomputed, abs=1e-4
    )
    accuracy = card["metrics"]["test"]["accuracy"]
    assert accuracy >= 0.915
    for baseline in card["baselines"].values():
        assert accuracy > baseline["test_accuracy"], baseline["description"]
    calibration = card["calibration"]
    assert calibration["a"] > 0 and calibration["b"] >= 0 and 0 < calibration["power"] <= 1
    assert card["metrics"]["validation_snippets"]["ece"] <= 0.03


def test_newest_default_is_the_mixed_model_and_meets_what_it_claims(
    shipped_versions: list[Path], record_property: Any
) -> None:
    """Issue 24 on the newest default, from its card and, for the behavioural sets, from the
    export. What holds is asserted at the issue's bound; what the model does not reach (IMDB
    0.91, the new behavioural set 95%, the TF-IDF baseline's domain mean) is asserted at a floor
    that catches a regression and reported in docs/model.md, not claimed."""
    newest = shipped_versions[-1]
    card = _card(newest)
    assert card["preset"] == "default" and card["data"]["mix"] == "training/mixes/default.json"
    assert card["data"]["limit"] is None
    per_domain = card["per_domain"]
    domains = per_domain["test_by_domain"]
    assert set(domains) == MIX_DOMAINS
    assert per_domain["imdb_domains"] == ["movie"]
    for domain, figures in domains.items():
        model = figures["model"]
        record_property(f"{domain}_accuracy", model["accuracy"])
        # Every domain above VADER; the short texts' domains above version 7, the IMDB-only
        # model (on long book and DVD reviews and on movies version 7 stays ahead).
        assert model["accuracy"] > figures["vader"]["accuracy"] + 0.05, domain
        if domain in SHORT_TEXT_DOMAINS:
            assert model["accuracy"] > figures["live"]["accuracy"] + 0.05, domain
        # Calibrated on every domain: ECE within 0.03 where the test split can show it (a
        # perfectly calibrated model shows `ece_floor` on that many rows), within 0.03 of the
        # floor on the small ones (books, dvd: about 300 rows each).
        assert model["ece"] <= 0.03 or model["ece"] - model["ece_floor"] <= 0.03, domain
        if model["rows"] >= 1000:
            assert model["ece"] <= 0.03, domain
    means = per_domain["mean_accuracy_without_imdb_domains"]
    assert means["model"] > means["live"] + 0.05
    assert means["model"] > means["nbsvm"] and means["model"] > means["vader"] + 0.15
    assert means["model"] >= means["tfidf_logreg"] - 0.01  # not above it: docs/model.md
    assert domains["movie"]["model"]["accuracy"] >= 0.89
    # The behavioural sets, recomputed from the export, agree with the card.
    behaviour = card["behavioural"]["sets"]
    for name, floor in (("written_2026_11", 0.95), ("written_2026_12", 0.78)):
        rows = load_set(BEHAVIOUR_DIR / f"{name}.jsonl").texts
        probabilities = export_lib.served_probabilities(newest, [row.text for row in rows])
        correct = (probabilities >= 0.5) == (np.array([row.label for row in rows]) == 1)
        assert behaviour[name]["accuracy"] == pytest.approx(correct.mean(), abs=1e-4)
        record_property(f"{name}_accuracy", float(correct.mean()))
        assert correct.mean() >= floor, name
    assert card["resources"]["peak_rss_mb"] < 4096
