"""The model committed under model/ is intact, accurate as claimed, and scores the obvious right."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.training.conftest import SHIPPED_MODEL_BASE
from training import export as export_lib

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


@pytest.fixture(scope="module")
def shipped_versions() -> list[Path]:
    versions = export_lib.existing_versions(SHIPPED_MODEL_BASE)
    assert versions, f"no model is shipped under {SHIPPED_MODEL_BASE}"
    return [SHIPPED_MODEL_BASE / str(v) for v in versions]


def test_every_shipped_version_replays_its_recorded_samples(shipped_versions: list[Path]) -> None:
    for version in shipped_versions:
        card = json.loads((version / export_lib.MODEL_CARD).read_text())
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
    card = json.loads((shipped_versions[0] / export_lib.MODEL_CARD).read_text())
    assert card["metrics"]["test"]["examples"] == 25_000
    assert card["metrics"]["test"]["accuracy"] >= 0.86
