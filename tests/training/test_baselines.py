"""The baselines learn from the mix with the model's per-row sample weights; VADER is a fixed
reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.training.conftest import write_jsonl
from training import data, mixing
from training.baselines import fit_baselines, vader_probabilities
from training.data import ROW, RunData, RunRow


@pytest.fixture(scope="module")
def disagreeing(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    """Two corpora that disagree about "meh": positive in one, negative in the other."""
    root = tmp_path_factory.mktemp("disagreeing")
    # Numbers seen once: only "meh", "ugh" and "yay" carry evidence beyond a single row.
    write_jsonl(
        root / "fans.jsonl",
        [(f"meh {i}", 1) for i in range(400)] + [(f"ugh {i}", 0) for i in range(400, 800)],
    )
    write_jsonl(
        root / "critics.jsonl",
        [(f"meh {i}", 0) for i in range(1000, 1400)] + [(f"yay {i}", 1) for i in range(1400, 1800)],
    )
    spec = {"corpora": [{"name": "fans", "path": "fans.jsonl", "domain": "a"},
                        {"name": "critics", "path": "critics.jsonl", "domain": "b"}]}  # fmt: skip
    (root / "mix.json").write_text(json.dumps(spec), encoding="utf-8")
    mix = mixing.load_mix(root / "mix.json")
    sources = mixing.locate(mix, str(root), root / "cache")
    (root / "work").mkdir()
    return data.prepare(mix, sources, root / "work", 0.0, seed=1)


def _meh_probability(prepared: RunData, fans: float, critics: float) -> dict[str, float]:
    results = fit_baselines(prepared, {"fans": fans, "critics": critics}, refit=True)
    test = list(prepared.rows({"test"}))
    meh = np.array([row.text.startswith("meh") for row in test])
    assert meh.any()
    return {name: float(r.test_probabilities[meh].mean()) for name, r in results.items()}


def test_the_baselines_follow_the_mix_weights(disagreeing: RunData) -> None:
    fans_count = _meh_probability(disagreeing, fans=5.0, critics=1.0)
    critics_count = _meh_probability(disagreeing, fans=1.0, critics=5.0)
    for name in ("tfidf_logreg", "nbsvm"):
        assert fans_count[name] > 0.5 > critics_count[name], name


def test_each_baseline_reports_its_choice_per_domain(disagreeing: RunData) -> None:
    results = fit_baselines(disagreeing, {"fans": 1.0, "critics": 1.0}, refit=False)
    test_rows = disagreeing.size({"test"})
    for result in results.values():
        recorded = result.to_dict()
        assert set(recorded["validation_accuracy"]) == {"a", "b"}
        assert recorded["C"] in (0.1, 1.0, 2.0, 8.0, 32.0)
        assert result.test_probabilities.shape == (test_rows,)
        assert "refitted" not in recorded["description"]


def test_vader_reads_compound_as_a_probability() -> None:
    rows = [
        RunRow(text, 1, "c", "d", "test", ROW)
        for text in ("What a great, wonderful day!", "Awful. I hate it.", "The box is blue.")
    ]
    positive, negative, neutral = vader_probabilities(rows)
    assert positive > 0.75 and negative < 0.25 and neutral == pytest.approx(0.5)
