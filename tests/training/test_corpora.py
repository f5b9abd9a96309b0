"""The corpus registry, the leak-proof split rule, readers, mix files and mix weights."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT
from training import corpora, mixing, splits
from training.corpora import Row
from training.data import DataError
from training.mixing import Mix, MixEntry
from training.splits import DuplicateReport, assign_splits

DATASETS = REPO_ROOT.parent / "shared" / "datasets"


def test_normalise_ignores_case_spacing_and_punctuation() -> None:
    variants = ["Great phone, works well!", "great  phone works well", "GREAT-PHONE... works well?"]
    assert len({splits.normalise(v) for v in variants}) == 1
    assert len({splits.key_hash(v) for v in variants}) == 1


def test_texts_without_letters_or_digits_keep_distinct_keys() -> None:
    keys = {splits.normalise(t) for t in (":)", ":(", "👍", "👍👍", "😡")}
    assert len(keys) == 5


def _split_rows(rows: list[Row]) -> tuple[list[tuple[Row, str]], DuplicateReport]:
    report = DuplicateReport()
    return list(assign_splits(lambda: iter(rows), report)), report


def test_a_duplicate_lands_in_one_split_across_corpora() -> None:
    # Many texts, so every bucket (train, validation, test) is exercised.
    texts = [f"The charger number {i} stopped working after a week" for i in range(300)]
    rows = [Row(t, i % 2, "reviews", "product") for i, t in enumerate(texts)]
    rows += [
        Row(t.upper().replace(" ", "  ") + "!!!", i % 2, "tweets", "social")
        for i, t in enumerate(texts)
    ]
    assigned, report = _split_rows(rows)
    split_by_corpus = {(r.corpus, splits.normalise(r.text)): s for r, s in assigned}
    assert len(assigned) == 600
    for text in texts:
        key = splits.normalise(text)
        assert split_by_corpus[("reviews", key)] == split_by_corpus[("tweets", key)]
    assert set(split_by_corpus.values()) == {"train", "validation", "test"}
    assert report.shared_across_corpora == Counter({"reviews + tweets": 300})


def test_imdb_test_stays_and_its_copies_never_train() -> None:
    review = "A slow, beautiful film about two brothers."
    rows = [
        Row(review, 1, "imdb", "movie", "test"),
        Row(review.lower(), 1, "imdb", "movie", "train"),
        Row(review + " ", 1, "blog_reviews", "movie"),
    ]
    assigned, report = _split_rows(rows)
    assert [(r.corpus, r.official, s) for r, s in assigned] == [
        ("imdb", "test", "test"),
        ("blog_reviews", None, "test"),
    ]
    assert report.dropped == Counter({"copy of an imdb/test text": 1})


def test_conflicting_labels_are_dropped_and_repeats_kept_once() -> None:
    rows = [
        Row("Works fine.", 1, "a", "product"),
        Row("works fine", 0, "b", "product"),
        Row("Sturdy and quiet", 1, "a", "product"),
        Row("sturdy and quiet!", 1, "a", "product"),
    ]
    assigned, report = _split_rows(rows)
    assert [r.text for r, _ in assigned] == ["Sturdy and quiet"]
    assert report.conflicting_texts == 1
    assert report.dropped == Counter({"conflicting labels": 2, "repeat within a corpus": 1})
    assert report.to_dict()["repeats_within_corpus"] == {"a": 1}


def test_read_file_reads_gzipped_jsonl_and_a_users_csv(tmp_path: Path) -> None:
    jsonl = tmp_path / "c.jsonl.gz"
    with gzip.open(jsonl, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"text": "good", "label": 1, "domain": "food"}) + "\n\n")
    csv_file = tmp_path / "tickets.csv"
    csv_file.write_text("text,label\nthe app keeps freezing,negative\n", encoding="utf-8")
    assert list(corpora.read_file(jsonl, "c")) == [Row("good", 1, "c", "food")]
    assert list(corpora.read_file(csv_file, "tickets", "support")) == [
        Row("the app keeps freezing", 0, "tickets", "support")
    ]
    with pytest.raises(DataError, match=r"tickets.csv: row 2: no domain"):
        list(corpora.read_file(csv_file, "tickets"))


def test_mix_file_names_corpora_weights_to_choose_from_and_a_users_file(tmp_path: Path) -> None:
    (tmp_path / "mine.jsonl").write_text(
        json.dumps({"text": "fast refund", "label": 1}) + "\n", encoding="utf-8"
    )
    spec = {"corpora": [{"name": "imdb", "weight": [2, 4]}, {"name": "pros_cons"},
                        {"name": "mine", "path": "mine.jsonl", "domain": "support",
                         "terms": "ours"}]}  # fmt: skip
    path = tmp_path / "mix.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    mix = mixing.load_mix(path)
    assert mix.candidates() == [
        {"imdb": 2.0, "pros_cons": 1.0, "mine": 1.0},
        {"imdb": 4.0, "pros_cons": 1.0, "mine": 1.0},
    ]
    (mine,) = mixing.locate(Mix(mix.entries[2:]), str(tmp_path / "nowhere"), tmp_path)
    assert list(mine.rows()) == [Row("fast refund", 1, "mine", "support")]
    assert mine.entry.describe()["terms"] == "ours" and not mine.entry.cuts_snippets
    for bad, message in (
        ({"corpora": [{"name": "nope"}]}, "not registered"),
        ({"corpora": [{"name": "x", "path": "mine.jsonl"}]}, "needs a domain"),
        ({"corpora": [{"name": "imdb", "weight": [3, -1]}]}, "positive number"),
        ({"corpora": [{"name": "imdb", "wieght": 3}]}, "unknown field"),
        ({"corpora": [{"name": "imdb"}, {"name": "imdb"}]}, "named twice"),
        ({"corpora": []}, "names no corpus"),
    ):
        path.write_text(json.dumps(bad), encoding="utf-8")
        with pytest.raises(DataError, match=message):
            mixing.load_mix(path)


def test_every_missing_corpus_is_named_at_once_and_imdb_is_downloaded_only_when_absent(
    tmp_path: Path,
) -> None:
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    (datasets / "pros_cons.jsonl.gz").write_bytes(b"")
    mix = Mix((MixEntry("pros_cons"), MixEntry("airline_tweets"), MixEntry("yelp_reviews_10k")))
    with pytest.raises(DataError) as error:
        mixing.locate(mix, str(datasets), tmp_path / "cache")
    message = str(error.value)
    assert "airline_tweets.jsonl.gz" in message and "yelp_reviews_10k.jsonl.gz" in message
    assert "pros_cons" not in message and "--datasets" in message
    (located,) = mixing.locate(Mix((MixEntry("imdb"),)), str(DATASETS), tmp_path / "cache")
    assert located.path == DATASETS / corpora.IMDB_ARCHIVE, "no download when it is there"


def test_the_shipped_mixes_name_registered_corpora() -> None:
    default = mixing.default_mix()
    assert [e.name for e in default.entries] == [c.name for c in corpora.REGISTRY]
    assert {"imdb": 3.0} in [{"imdb": c["imdb"]} for c in default.candidates()]
    assert [e.name for e in mixing.default_mix("imdb").entries] == ["imdb"]
    assert default.source == "training/mixes/default.json"


def test_one_file_makes_a_mix_of_its_own(tmp_path: Path) -> None:
    (imdb,) = mixing.mix_of("https://example.org/aclImdb_v1.tar.gz").entries
    assert (imdb.name, imdb.domain) == ("imdb", "movie")
    (mine,) = mixing.mix_of(str(tmp_path / "tickets.csv")).entries
    assert (mine.name, mine.domain) == ("tickets", "tickets")
    (mine,) = mixing.mix_of(str(tmp_path / "tickets.csv"), "support").entries
    assert mine.domain == "support"


def test_row_weights_give_each_corpus_one_share_with_balanced_labels() -> None:
    counts = Counter({("big", 1): 800, ("big", 0): 200, ("small", 1): 50, ("small", 0): 50})
    weights = mixing.row_weights(counts, {"big": 1.0, "small": 3.0})
    total = {key: weights[key] * n for key, n in counts.items()}
    assert total[("big", 1)] == pytest.approx(total[("big", 0)])
    assert total[("small", 1)] + total[("small", 0)] == pytest.approx(
        3 * (total[("big", 1)] + total[("big", 0)])
    )
    assert sum(total.values()) / sum(counts.values()) == pytest.approx(1.0)


def test_registry_matches_the_shared_datasets() -> None:
    for corpus in corpora.REGISTRY:
        assert (DATASETS / corpus.file).is_file(), corpus.file
        if corpus.name != corpora.IMDB:
            first = next(corpora.read_file(DATASETS / corpus.file, corpus.name))
            assert first.domain in corpus.domains
