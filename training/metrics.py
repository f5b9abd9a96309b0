"""Per-group figures: accuracy and calibration error per domain (or corpus), the mean and worst
domain that every choice is made on, and the ECE a perfectly calibrated model would show.

Every setting of a run on several domains is chosen by the **mean of the per-domain validation
accuracies** (ties: the better worst domain), not by pooled accuracy: pooled, IMDB's 25,000 long
reviews would outvote six other domains.

ECE on a small test split is mostly sampling noise: even a perfectly calibrated model shows an
ECE of ~0.04 on 300 rows. `ece_floor` is that expectation for the scores at hand (labels drawn
from the model's own probabilities), so the card can put each ECE beside what its row count
allows, and the gate holds a domain to its ECE above that floor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.calibration import ECE_BINS, expected_calibration_error

ECE_FLOOR_DRAWS = 200
DECISION_THRESHOLD = 0.5


def correct(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Which decisions (P(positive) >= 0.5) are right."""
    return np.asarray(
        (np.asarray(probabilities) >= DECISION_THRESHOLD) == (np.asarray(labels) == 1)
    )


def accuracy_by_group(right: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Accuracy of each group (e.g. domain) of rows, by name."""
    return {
        str(group): float(np.mean(right[groups == group])) for group in sorted(set(groups.tolist()))
    }


@dataclass(frozen=True)
class DomainScore:
    """What a choice among settings is made on: the mean of the per-domain accuracies, and the
    worst domain's to break ties."""

    mean: float
    worst: float

    @classmethod
    def of(cls, by_domain: Mapping[str, float]) -> DomainScore:
        values = list(by_domain.values())
        return cls(float(np.mean(values)), float(np.min(values)))

    def key(self) -> tuple[float, float]:
        # Means within a rounding step of each other tie: a difference of 1e-12 is no evidence.
        return round(self.mean, 6), round(self.worst, 6)


def ece_floor(
    probabilities: np.ndarray, draws: int = ECE_FLOOR_DRAWS, seed: int = 0, bins: int = ECE_BINS
) -> float:
    """Mean ECE of a perfectly calibrated model with these probabilities on this many rows:
    labels drawn from the probabilities themselves, `draws` times."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return 0.0
    confidence = np.maximum(p, 1.0 - p)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    in_bin = np.zeros((p.size, bins))
    in_bin[np.arange(p.size), which] = 1.0
    rows = in_bin.sum(axis=0)
    labels = np.random.default_rng(seed).random((draws, p.size)) < p
    right = (labels == (p >= DECISION_THRESHOLD)).astype(np.float64)
    right_per_bin = right @ in_bin  # [draws, bins]
    confidence_per_bin = confidence @ in_bin
    gap = np.abs(right_per_bin - confidence_per_bin[np.newaxis])  # |accuracy - confidence| x rows
    return float(np.mean(gap.sum(axis=1) / p.size)) if rows.sum() else 0.0


def figures(probabilities: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Accuracy, ECE and its floor, and the row count of one group of rows."""
    return {
        "accuracy": round(float(np.mean(correct(probabilities, labels))), 4),
        "ece": round(expected_calibration_error(probabilities, labels), 4),
        "ece_floor": round(ece_floor(probabilities, seed=seed), 4),
        "rows": len(labels),
    }


def table(
    scorers: Mapping[str, np.ndarray], labels: np.ndarray, groups: np.ndarray
) -> dict[str, dict[str, dict[str, Any]]]:
    """{group: {scorer: figures}} for every group of rows and every scorer's probabilities."""
    return {
        str(group): {
            name: figures(probabilities[groups == group], labels[groups == group])
            for name, probabilities in scorers.items()
        }
        for group in sorted(set(groups.tolist()))
    }
