"""Train → export → reload → predict end to end on a small slice of the real IMDB data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from contract import CARD_FILE
from training import export as export_lib
from training import publish as publish_lib
from training.behavioural import BEHAVIOUR_DIR, KINDS
from training.cli import main
from training.config import DataSettings, OutputSettings, ReportSettings, RunConfig
from training.data import DataSource
from training.gate import GateSettings
from training.model import PRESETS, Hyperparameters
from training.run import run

FORCE = GateSettings(force=True)  # tiny slices lose to the baselines; the gate has its own tests


def _config(
    archive: Path, output: Path, params: Hyperparameters, preset: str, limit: int
) -> RunConfig:
    return RunConfig(
        params=params,
        preset=preset,
        data=DataSettings(DataSource.at(str(archive)), output / "cache", limit),
        output=OutputSettings(output),
        gate=FORCE,
        report=ReportSettings(verbose=0),
    )


@pytest.fixture(scope="module")
def trained(real_imdb_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("models")
    params = dataclasses.replace(PRESETS["tutorial"], epochs=2, max_tokens=2000)
    run(_config(real_imdb_archive, output, params, "tutorial", limit=1500))
    return output / "sentiment"


def test_publishes_version_one_with_a_complete_card(trained: Path) -> None:
    assert publish_lib.existing_versions(trained) == [1]
    assert not list(trained.glob(".tmp-*")), "the staging directory is gone after publishing"
    version = trained / "1"
    assert (version / "saved_model.pb").is_file() and (version / "training_curves.png").is_file()
    assert version.stat().st_mode & 0o777 == 0o755, "readable by a service running as another user"
    card = json.loads((version / CARD_FILE).read_text())
    assert card["version"] == 1 and card["preset"] == "tutorial"
    assert set(card["metrics"]["test"]) == {
        "accuracy",
        "loss",
        "roc_auc",
        "ece",
        "ece_uncalibrated",
        "examples",
    }
    assert card["calibration"]["method"] == "none" and card["calibration"]["a"] == 1.0
    assert card["metrics"]["test"]["examples"] == 1500
    assert len(card["data"]["sha256"]) == 64 and card["data"]["domain"] == "movie"
    assert card["hyperparameters"]["max_tokens"] == 2000
    # Without a start every epoch trained is kept up to the best one, and the card says so.
    training = card["training"]
    assert 1 <= training["epochs_kept"] <= training["epochs_run"] <= 2
    assert card["epochs_trained"] == training["epochs_kept"]


def test_export_takes_raw_strings_and_returns_probabilities(trained: Path) -> None:
    serve = tf.saved_model.load(str(trained / "1")).signatures["serving_default"]
    _, inputs = serve.structured_input_signature
    assert list(inputs) == ["text"] and inputs["text"].dtype == tf.string
    assert set(serve.structured_outputs) == {"probability", "logit"}
    assert {"serving_default", "score", "explain"} <= set(
        tf.saved_model.load(str(trained / "1")).signatures
    )
    out = serve(text=tf.constant(["An excellent film.", "Awful.", ""]))
    probability, logit = out["probability"].numpy(), out["logit"].numpy()
    assert probability.shape == (3, 1)
    np.testing.assert_allclose(probability, 1 / (1 + np.exp(-logit)), atol=1e-6)


@pytest.fixture(scope="module")
def trained_default(real_imdb_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default preset, shrunk to seconds: masking, n-grams, snippets, length calibration."""
    output = tmp_path_factory.mktemp("default-models")
    params = dataclasses.replace(PRESETS["default"], epochs=2, max_tokens=5000, sequence_length=300)
    run(_config(real_imdb_archive, output, params, "default", limit=1500))
    return output / "sentiment" / "1"


def test_default_preset_exports_its_length_calibration(trained_default: Path) -> None:
    card = json.loads((trained_default / CARD_FILE).read_text())
    assert card["preset"] == "default" and card["hyperparameters"]["tokenizer"] == "negation"
    calibration = card["calibration"]
    assert calibration["method"] == "length_power" and calibration["a"] > 0
    assert calibration["b"] >= 0 and 0 < calibration["power"] <= 1
    assert all(t > 0 for t in calibration["temperature_by_units"].values())
    assert "validation_snippets" in card["metrics"]
    texts = [s["text"] for s in card["samples"]]
    served = export_lib.served_probabilities(trained_default, texts)
    np.testing.assert_allclose(served, [s["probability"] for s in card["samples"]], atol=1e-6)
    # The served logit is the calibrated one: probability == sigmoid(logit) for every length.
    serve = tf.saved_model.load(str(trained_default)).signatures["serving_default"]
    out = serve(text=tf.constant(["Great.", "A long " * 200 + "review."]))
    np.testing.assert_allclose(
        out["probability"].numpy(), 1 / (1 + np.exp(-out["logit"].numpy())), atol=1e-6
    )


def test_default_preset_reports_the_refit_beside_the_held_out_model(
    trained_default: Path,
) -> None:
    card = json.loads((trained_default / CARD_FILE).read_text())
    assert card["hyperparameters"]["refit"] is True
    before, after = card["metrics"]["test_before_refit"], card["metrics"]["test"]
    assert before["examples"] == after["examples"] == 1500
    assert before != after, "the refitted model is a different model"
    for baseline in card["baselines"].values():
        assert baseline["description"].endswith("(refitted on all training reviews)")


def test_refit_learns_from_the_validation_reviews_at_the_chosen_c() -> None:
    """After the refit, a word seen only in validation reviews is in the vocabulary and counts."""
    from training.data import Split, Splits
    from training.fit import fit_choosing_on_validation, refit

    def reviews(words: list[tuple[str, int]], copies: int) -> Split:
        texts = [f"The film was {word} and the cast was {word}." for word, _ in words] * copies
        return Split(texts, np.array([label for _, label in words] * copies, np.float32))

    fit = reviews([("great", 1), ("awful", 0), ("superb", 1), ("dreadful", 0)], 6)
    validation = reviews([("zorblax", 1), ("awful", 0)], 4)
    params = dataclasses.replace(
        PRESETS["default"], max_tokens=200, ngrams=1, epochs=1, snippets_per_review=0.0,
        counterfactuals=False,
    )  # fmt: skip
    chosen = fit_choosing_on_validation(params, Splits(fit, validation, fit, fit), verbose=0)
    assert "zorblax" not in chosen.vectorizer.get_vocabulary()
    assert chosen.start is not None and chosen.start.c is not None
    final = refit(params, fit + validation, chosen, verbose=0)
    assert final.start is not None and final.start.c == chosen.start.c
    vocabulary = final.vectorizer.get_vocabulary()
    assert final.start.scores[vocabulary.index("zorblax")] > 0


def test_default_preset_scores_empty_and_punctuation_only_text(trained_default: Path) -> None:
    """A masked average over no tokens would be 0/0; the export must still answer a number."""
    probabilities = export_lib.served_probabilities(trained_default, ["", "?!...", "   "])
    assert np.all(np.isfinite(probabilities)) and np.all((probabilities > 0) & (probabilities < 1))


def test_recorded_samples_replay_exactly(trained: Path) -> None:
    card = json.loads((trained / "1" / CARD_FILE).read_text())
    texts = [s["text"] for s in card["samples"]]
    served = export_lib.served_probabilities(trained / "1", texts)
    np.testing.assert_allclose(served, [s["probability"] for s in card["samples"]], atol=1e-6)


def test_a_second_run_publishes_the_next_version(trained: Path, real_imdb_archive: Path) -> None:
    code = main(
        [
            "--data",
            str(real_imdb_archive),
            "--output-dir",
            str(trained.parent),
            "--limit",
            "300",
            "--epochs",
            "1",
            "--max-tokens",
            "500",
            "--force",
            "--quiet",
        ]
    )
    assert code == 0
    assert publish_lib.existing_versions(trained) == [1, 2]
    assert (trained / "1" / "saved_model.pb").is_file(), "earlier versions are never touched"


def test_failure_mid_export_publishes_nothing(
    real_imdb_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "sentiment"
    (base / "1").mkdir(parents=True)
    (base / "1" / "marker").write_text("published earlier")

    def broken_plot(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("training.card.plot_history", broken_plot)
    params = dataclasses.replace(PRESETS["tutorial"], epochs=1, max_tokens=500)
    with pytest.raises(OSError, match="disk full"):
        run(_config(real_imdb_archive, tmp_path, params, "tutorial", limit=200))
    assert sorted(p.name for p in base.iterdir()) == ["1"], "no new version and no staging left"
    assert (base / "1" / "marker").read_text() == "published earlier"


def test_bad_data_exits_with_a_clear_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngood,1\nbad,7\n")
    assert main(["--data", str(bad), "--output-dir", str(tmp_path / "out"), "--quiet"]) == 2
    assert "bad.csv: row 3" in caplog.text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("saved_model.pb"))


def test_card_carries_the_baselines_and_each_behavioural_set_per_kind(trained: Path) -> None:
    """Every shipped set is reported on its own, per kind, and pooled; read from the package,
    so a card built in the training image (which has no tests/) has the same section."""
    card = json.loads((trained / "1" / CARD_FILE).read_text())
    assert set(card["baselines"]) == {"tfidf_logreg", "nbsvm"}
    for baseline in card["baselines"].values():
        assert 0.5 < baseline["test_accuracy"] <= 1.0 and baseline["C"] > 0
    behaviour = card["behavioural"]
    shipped = sorted(path.stem for path in BEHAVIOUR_DIR.glob("*.jsonl"))
    assert "written_2026_11" in shipped and sorted(behaviour["sets"]) == shipped
    for name, reported in behaviour["sets"].items():
        rows = (BEHAVIOUR_DIR / f"{name}.jsonl").read_text().splitlines()
        assert reported["texts"] == len(rows)
        assert set(reported["by_kind"]) == {json.loads(line)["kind"] for line in rows}
        assert reported["texts"] == sum(k["texts"] for k in reported["by_kind"].values())
    assert set(behaviour["by_kind"]) == set(KINDS)
    assert behaviour["texts"] == sum(s["texts"] for s in behaviour["sets"].values())
    assert 0.0 <= behaviour["accuracy"] <= 1.0
    assert card["gate"]["forced"] is True and card["gate"]["live_version"] is None


def test_gate_refuses_a_worse_model_and_force_publishes_it(
    trained_default: Path, real_imdb_archive: Path, tmp_path: Path
) -> None:
    """A one-epoch model on 300 reviews must not replace the live version; --force overrides."""
    import shutil

    base = tmp_path / "sentiment"
    shutil.copytree(trained_default, base / "1")
    arguments = [
        "--data",
        str(real_imdb_archive),
        "--output-dir",
        str(tmp_path),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--preset",
        "tutorial",
        "--limit",
        "300",
        "--epochs",
        "1",
        "--max-tokens",
        "500",
        "--quiet",
    ]
    assert main(arguments) == 3, "refused"
    assert sorted(p.name for p in base.iterdir()) == ["1"], "nothing published, no staging left"
    refused = list((tmp_path / "cache" / "refused").iterdir())
    assert len(refused) == 1 and (refused[0] / "saved_model.pb").is_file()
    card = json.loads((refused[0] / CARD_FILE).read_text())
    failed = {check["name"] for check in card["gate"]["checks"] if not check["passed"]}
    assert "live_version" in failed and card["gate"]["published"] is False

    assert main([*arguments, "--force"]) == 0
    assert publish_lib.existing_versions(base) == [1, 2]
    forced = json.loads((base / "2" / CARD_FILE).read_text())
    assert forced["gate"]["passed"] is False and forced["gate"]["forced"] is True
    assert forced["gate"]["live_version"] == 1
