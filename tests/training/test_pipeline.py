"""Train → export → reload → predict end to end: the mix on a sample of every corpus, and the
tutorial on real IMDB reviews."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from contract import CARD_FILE
from tests.training.conftest import write_jsonl
from training import corpora, mixing, splits
from training import data as data_lib
from training import export as export_lib
from training import publish as publish_lib
from training.behavioural import BEHAVIOUR_DIR, KINDS
from training.cli import main
from training.config import DataSettings, OutputSettings, ReportSettings, RunConfig
from training.fit import fit_choosing_on_validation, refit
from training.gate import GateSettings
from training.model import PRESETS, Hyperparameters
from training.run import run

FORCE = GateSettings(force=True)  # tiny samples lose to the baselines; the gate has its own tests
DOMAINS = {"movie", "product", "books", "dvd", "service", "food", "social"}


def _card(version: Path) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((version / CARD_FILE).read_text())
    return card


def _config(
    archive: Path, output: Path, params: Hyperparameters, preset: str, limit: int | None = None
) -> RunConfig:
    return RunConfig(
        params=params,
        preset=preset,
        data=DataSettings(mixing.mix_of(str(archive)), str(output), output / "cache", limit),
        output=OutputSettings(output),
        gate=FORCE,
        report=ReportSettings(verbose=0),
    )


# --- the default preset on the mix ---------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m training` on about 300 rows of every registered corpus, plus a user's own
    file added to the mix with a domain of its own."""
    root = tmp_path_factory.mktemp("mixed")
    tickets = write_jsonl(
        root / "tickets.jsonl",
        [(f"refund number {i} came fast, thanks", 1) for i in range(150)]
        + [(f"ticket {i} still open after a week", 0) for i in range(150)],
    )
    code = main(
        [
            "--limit", "300", "--max-tokens", "20000", "--epochs", "2",
            "--data", str(tickets), "--domain", "support", "--mix", "default",
            "--output-dir", str(root), "--cache-dir", str(root / "cache"),
            "--force", "--quiet",
        ]
    )  # fmt: skip
    assert code == 0
    return root / "sentiment" / "1"


def test_the_mix_trains_on_every_corpus_and_the_card_reports_every_domain(mixed: Path) -> None:
    card = _card(mixed)
    per_domain = card["per_domain"]
    assert set(per_domain["test_by_domain"]) == DOMAINS | {"support"}
    registered = {c.name for c in corpora.REGISTRY}
    assert set(per_domain["test_by_corpus"]) == registered | {"tickets"}
    for group in (*per_domain["test_by_domain"].values(), *per_domain["test_by_corpus"].values()):
        assert set(group) == {"model", "tfidf_logreg", "nbsvm", "vader"}
        for figures in group.values():
            assert set(figures) == {"accuracy", "ece", "ece_floor", "rows"}
            assert 0 <= figures["accuracy"] <= 1 and 0 <= figures["ece_floor"] <= 1
    assert per_domain["imdb_domains"] == ["movie"]
    means = per_domain["mean_accuracy_without_imdb_domains"]
    assert set(means) == {"model", "tfidf_logreg", "nbsvm", "vader"}
    # The corpora with their terms, rows per split and weights; the duplicates found.
    listed = card["data"]["corpora"]
    assert listed["yelp_reviews_10k"]["terms"] == corpora.BY_NAME["yelp_reviews_10k"].terms
    assert listed["tickets"]["domains"] == ["support"] and listed["tickets"]["weight"] == 1.0
    assert listed["imdb"]["weights_tried"] == [3.0, 6.0]
    assert listed["imdb"]["weight"] in (3.0, 6.0) and len(listed["imdb"]["sha256"]) == 64
    assert {"train", "validation", "test"} <= set(listed["pros_cons"]["rows"])
    assert card["data"]["limit"] == 300 and card["data"]["mix"] == "training/mixes/default.json"
    assert card["data"]["duplicates"]["rows"] > 130_000  # every row was read, then sampled
    # What was tried on validation, and why the choice.
    selection = card["selection"]
    assert len(selection["tried"]) == 6 and "per-domain" in selection["rule"]
    assert {t["weights"]["imdb"] for t in selection["tried"]} == {3.0, 6.0}
    assert {t["C"] for t in selection["tried"]} == {0.1, 0.3, 1.0}
    chosen = selection["chosen"]
    assert chosen["mean"] == max(t["mean"] for t in selection["tried"])
    assert set(chosen["validation_accuracy"]) == DOMAINS | {"support"}
    assert card["resources"]["peak_rss_mb"] > 0 and card["resources"]["wall_seconds"] > 0
    assert card["hyperparameters"]["negation_tie_units"] == "any_negated"


def test_the_mix_exports_a_calibrated_refitted_version(mixed: Path) -> None:
    card = _card(mixed)
    calibration = card["calibration"]
    assert calibration["method"] == "length_power" and "each domain" in calibration["fitted_on"]
    assert {"validation", "validation_snippets", "test", "test_before_refit"} <= set(
        card["metrics"]
    )
    for baseline in card["baselines"].values():
        assert baseline["description"].endswith("(refitted on training + validation)")
        assert set(baseline["validation_accuracy"]) == DOMAINS | {"support"}
    texts = [s["text"] for s in card["samples"]]
    served = export_lib.served_probabilities(mixed, texts)
    np.testing.assert_allclose(served, [s["probability"] for s in card["samples"]], atol=1e-6)
    probabilities = export_lib.served_probabilities(
        mixed, ["", "?!...", "   ", "A long " * 200 + "review."]
    )
    assert np.all((probabilities > 0) & (probabilities < 1))
    checks = {check["name"] for check in card["gate"]["checks"]}
    assert {f"calibration/{domain}" for domain in DOMAINS} <= checks


def test_refit_learns_from_the_validation_rows_at_the_chosen_c(tmp_path: Path) -> None:
    """After the refit, a word seen only in validation rows is in the vocabulary and counts."""

    def texts_in(split: str, template: str, n: int) -> list[str]:
        texts = (template.format(i) for i in range(100_000))
        return [t for t in texts if splits.bucket(splits.key_hash(t)) == split][:n]

    rows = [(t, 1) for t in texts_in("train", "the film was great and superb {}", 30)]
    rows += [(t, 0) for t in texts_in("train", "the film was awful and dreadful {}", 30)]
    rows += [(t, 1) for t in texts_in("validation", "the film was zorblax {}", 10)]
    rows += [(t, 0) for t in texts_in("validation", "the film was awful {}", 10)]
    rows += [(t, i % 2) for i, t in enumerate(texts_in("test", "the film was fine {}", 10))]
    path = write_jsonl(tmp_path / "films.jsonl", rows, "movie")
    mix = mixing.mix_of(str(path))
    prepared = data_lib.prepare(mix, mixing.locate(mix, ".", tmp_path), tmp_path, 0.0, 1)
    params = dataclasses.replace(
        PRESETS["default"], max_tokens=300, ngrams=1, epochs=1, snippets_per_review=0.0
    )
    chosen = fit_choosing_on_validation(params, prepared, mix, verbose=0)
    assert "zorblax" not in chosen.vectorizer.get_vocabulary()
    assert chosen.start is not None and chosen.start.c is not None
    final = refit(params, prepared, chosen, verbose=0)
    assert final.start is not None and final.start.c == chosen.start.c
    vocabulary = final.vectorizer.get_vocabulary()
    assert final.start.scores[vocabulary.index("zorblax")] > 0


# --- the tutorial on real IMDB reviews ---------------------------------------------------------


@pytest.fixture(scope="module")
def trained(small_imdb_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("models")
    params = dataclasses.replace(PRESETS["tutorial"], epochs=2, max_tokens=2000)
    run(_config(small_imdb_archive, output, params, "tutorial"))
    return output / "sentiment"


def test_publishes_version_one_with_a_complete_card(trained: Path) -> None:
    assert publish_lib.existing_versions(trained) == [1]
    assert not list(trained.glob(".tmp-*")), "the staging directory is gone after publishing"
    version = trained / "1"
    assert (version / "saved_model.pb").is_file() and (version / "training_curves.png").is_file()
    assert version.stat().st_mode & 0o777 == 0o755, "readable by a service running as another user"
    card = _card(version)
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
    assert card["metrics"]["test"]["examples"] == 300, "IMDB's own test reviews, all of them"
    assert set(card["per_domain"]["test_by_domain"]) == {"movie"}
    (imdb,) = card["data"]["corpora"].values()
    assert len(imdb["sha256"]) == 64 and imdb["domains"] == ["movie"]
    assert card["hyperparameters"]["max_tokens"] == 2000
    # Without a start every epoch trained is kept up to the best one, and the card says so.
    training = card["training"]
    assert 1 <= training["epochs_kept"] <= training["epochs_run"] <= 2
    assert card["epochs_trained"] == training["epochs_kept"]


def test_export_takes_raw_strings_and_returns_probabilities(trained: Path) -> None:
    loaded = tf.saved_model.load(str(trained / "1"))
    serve = loaded.signatures["serving_default"]
    _, inputs = serve.structured_input_signature
    assert list(inputs) == ["text"] and inputs["text"].dtype == tf.string
    assert set(serve.structured_outputs) == {"probability", "logit"}
    assert {"serving_default", "score", "explain"} <= set(loaded.signatures)
    out = serve(text=tf.constant(["An excellent film.", "Awful.", ""]))
    probability, logit = out["probability"].numpy(), out["logit"].numpy()
    assert probability.shape == (3, 1)
    np.testing.assert_allclose(probability, 1 / (1 + np.exp(-logit)), atol=1e-6)


def test_recorded_samples_replay_exactly(trained: Path) -> None:
    card = _card(trained / "1")
    texts = [s["text"] for s in card["samples"]]
    served = export_lib.served_probabilities(trained / "1", texts)
    np.testing.assert_allclose(served, [s["probability"] for s in card["samples"]], atol=1e-6)


def test_card_carries_the_baselines_and_each_behavioural_set_per_kind(trained: Path) -> None:
    """Every shipped set is reported on its own, per kind, and pooled; read from the package,
    so a card built in the training image (which has no tests/) has the same section."""
    card = _card(trained / "1")
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


def test_a_second_run_publishes_the_next_version(trained: Path, small_imdb_archive: Path) -> None:
    code = main(
        [
            "--preset", "tutorial", "--data", str(small_imdb_archive),
            "--output-dir", str(trained.parent), "--cache-dir", str(trained.parent / "cache"),
            "--epochs", "1", "--max-tokens", "500", "--force", "--quiet",
        ]
    )  # fmt: skip
    assert code == 0
    assert publish_lib.existing_versions(trained) == [1, 2]
    assert (trained / "1" / "saved_model.pb").is_file(), "earlier versions are never touched"
    live = _card(trained / "2")["per_domain"]["test_by_domain"]["movie"]["live"]
    assert live["rows"] == 300, "the live version 1 scored on the same test rows"


def test_the_gate_refuses_a_candidate_worse_on_a_domain_and_force_publishes_it(
    mixed: Path, small_imdb_archive: Path, tmp_path: Path
) -> None:
    """A one-epoch tutorial model must not replace a version trained on the mix: worse on
    movie reviews; --force overrides, and the card says so."""
    base = tmp_path / "sentiment"
    shutil.copytree(mixed, base / "1")
    arguments = [
        "--preset", "tutorial", "--data", str(small_imdb_archive),
        "--output-dir", str(tmp_path), "--cache-dir", str(tmp_path / "cache"),
        "--epochs", "1", "--max-tokens", "500", "--quiet",
    ]  # fmt: skip
    assert main(arguments) == 3, "refused"
    assert sorted(p.name for p in base.iterdir()) == ["1"], "nothing published, no staging left"
    refused = list((tmp_path / "cache" / "refused").iterdir())
    assert len(refused) == 1 and (refused[0] / "saved_model.pb").is_file()
    card = _card(refused[0])
    failed = {check["name"] for check in card["gate"]["checks"] if not check["passed"]}
    assert "live_version/movie" in failed and card["gate"]["published"] is False

    assert main([*arguments, "--force"]) == 0
    assert publish_lib.existing_versions(base) == [1, 2]
    forced = _card(base / "2")
    assert forced["gate"]["passed"] is False and forced["gate"]["forced"] is True
    assert forced["gate"]["live_version"] == 1


def test_failure_mid_export_publishes_nothing(
    small_imdb_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "sentiment"
    (base / "1").mkdir(parents=True)
    (base / "1" / "marker").write_text("published earlier")

    def broken_plot(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("training.card.plot_history", broken_plot)
    params = dataclasses.replace(PRESETS["tutorial"], epochs=1, max_tokens=500)
    with pytest.raises(OSError, match="disk full"):
        run(_config(small_imdb_archive, tmp_path, params, "tutorial"))
    assert sorted(p.name for p in base.iterdir()) == ["1"], "no new version and no staging left"
    assert (base / "1" / "marker").read_text() == "published earlier"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--data", "{tmp}/bad.csv"], "bad.csv: row 3"),
        (["--datasets", "{tmp}/nowhere", "--mix", "default"], "pros_cons.jsonl.gz"),
        (["--mix", "{tmp}/absent.json"], "absent.json: not a mix file"),
    ],
)
def test_bad_data_exits_with_a_clear_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, arguments: list[str], message: str
) -> None:
    (tmp_path / "bad.csv").write_text("text,label\ngood,1\nbad,7\n")
    filled = [a.format(tmp=tmp_path) for a in arguments]
    output = ["--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path), "--quiet"]
    assert main([*filled, *output]) == 2
    assert message in caplog.text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("saved_model.pb"))
