"""Data loading: every input kind reads alike; every kind of bad data names its file and row."""

from __future__ import annotations

import functools
import http.server
import json
import re
import tarfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest

from tests.training.conftest import (
    NEGATIVE_TEXTS,
    POSITIVE_TEXTS,
    write_imdb_archive,
    write_jsonl,
)
from training import data, mixing, splits
from training.data import DataError, RunData


def test_archive_reads_labelled_splits_and_skips_unsup(imdb_archive: Path, tmp_path: Path) -> None:
    loaded = data.load(str(imdb_archive), tmp_path)
    assert len(loaded.train.texts) == len(loaded.test.texts) == 6
    assert "unlabelled review that must be ignored" not in loaded.train.texts
    by_text = dict(zip(loaded.train.texts, loaded.train.labels.tolist(), strict=True))
    assert all(by_text[t] == 1 for t in POSITIVE_TEXTS)
    assert all(by_text[t] == 0 for t in NEGATIVE_TEXTS)
    assert loaded.sha256 == data.file_sha256(imdb_archive)


def test_extracted_directory_matches_archive(imdb_archive: Path, tmp_path: Path) -> None:
    extracted = tmp_path / "extracted"
    with tarfile.open(imdb_archive) as archive:
        archive.extractall(extracted, filter="data")
    from_dir = data.load(str(extracted / "aclImdb"), tmp_path)
    from_archive = data.load(str(imdb_archive), tmp_path)
    assert sorted(from_dir.train.texts) == sorted(from_archive.train.texts)
    assert sorted(from_dir.test.texts) == sorted(from_archive.test.texts)


def _rows(n: int) -> list[tuple[str, str]]:
    return [(f"review number {i}", "positive" if i % 2 else "negative") for i in range(n)]


def test_csv_accepts_word_and_digit_labels_and_holds_out_a_test_split(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    lines = ["text,label"] + [f'"{t}, with a comma",{lab}' for t, lab in _rows(8)]
    lines += ['"one more",1', '"and another",0']
    path.write_text("\n".join(lines) + "\n")
    loaded = data.load(str(path), tmp_path, test_fraction=0.2)
    assert len(loaded.train.texts) == 8 and len(loaded.test.texts) == 2
    assert set(loaded.train.texts + loaded.test.texts) >= {"one more", "and another"}
    assert (
        sorted(np.concatenate([loaded.train.labels, loaded.test.labels]).tolist())
        == [0] * 5 + [1] * 5
    )


def test_jsonl_reads_objects(tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in _rows(10)))
    loaded = data.load(str(path), tmp_path)
    assert len(loaded.train.texts) + len(loaded.test.texts) == 10


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("text,label\n", "empty file"),
        ("review,label\nfine,1\n", "row 1 (header): missing column(s) text"),
        ("text,label\ngood,1\nbad,maybe\n", "row 3: label 'maybe'"),
        ("text,label\ngood,1\n   ,0\n", "row 3: empty text"),
        ("text,label\ngood,1\ngreat,positive\n", "single class"),
    ],
)
def test_bad_csv_names_file_and_row(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=r"bad\.csv") as error:
        data.load(str(path), tmp_path)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"text": "good", "label": 1}', '{"text": "bad"}'], "row 2: missing key(s) label"),
        (['{"text": "good", "label": 1}', "not json"], "row 2: invalid JSON"),
        (['{"text": "good", "label": 1}', '{"text": "", "label": 0}'], "row 2: empty text"),
        (['{"text": "good", "label": 1}', '{"text": "x", "label": 2}'], "row 2: label 2"),
    ],
)
def test_bad_jsonl_names_file_and_row(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl") as error:
        data.load(str(path), tmp_path)
    assert message in str(error.value)


def test_unreadable_archive(tmp_path: Path) -> None:
    path = tmp_path / "broken.tar.gz"
    path.write_bytes(b"\x1f\x8b\x08 this is not really gzip")
    with pytest.raises(DataError, match=r"broken\.tar\.gz: unreadable archive"):
        data.load(str(path), tmp_path)


def test_truncated_archive(imdb_archive: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(imdb_archive.read_bytes()[:200])
    with pytest.raises(DataError, match=r"truncated\.tar\.gz: unreadable archive"):
        data.load(str(truncated), tmp_path)


def test_archive_with_empty_review_names_the_member(tmp_path: Path) -> None:
    path = write_imdb_archive(tmp_path / "a.tar.gz", {"aclImdb/train/pos/99_9.txt": "  "})
    with pytest.raises(DataError, match=r"aclImdb/train/pos/99_9.txt: empty review"):
        data.load(str(path), tmp_path)


def test_archive_without_a_split(tmp_path: Path) -> None:
    path = tmp_path / "nothing.tar.gz"
    with tarfile.open(path, "w:gz"):
        pass
    with pytest.raises(DataError, match="no reviews under train"):
        data.load(str(path), tmp_path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        data.load(str(tmp_path / "absent.csv"), tmp_path)


@pytest.fixture
def archive_server(imdb_archive: Path) -> Iterator[tuple[str, list[str]]]:
    """Serves the archive over HTTP on 127.0.0.1, so the default download path runs for real."""
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            requests.append(self.path)

    handler = functools.partial(Handler, directory=str(imdb_archive.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{imdb_archive.name}", requests
    finally:
        server.shutdown()


def test_url_is_downloaded_once_into_the_cache(
    archive_server: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, requests = archive_server
    cache = tmp_path / "cache"
    first = data.load(url, cache)
    second = data.load(url, cache)
    assert len(first.train.texts) == 6 and first.sha256 == second.sha256
    assert len(requests) == 1, "the second load must reuse the cached archive"
    assert not list(cache.glob("*.part"))


def test_failed_download_leaves_nothing_in_the_cache(
    archive_server: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, _ = archive_server
    with pytest.raises(DataError, match="download failed"):
        data.load(url.replace(".tar.gz", "-missing.tar.gz"), tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())


# --- the run's rows ----------------------------------------------------------------------------


def _reviews(n: int, word: str, label: int) -> list[tuple[str, int]]:
    return [
        (f"Review {i} of the {word} thing. It was {word} indeed. I would say {word} again!", label)
        for i in range(n)
    ]


def _prepared(tmp_path: Path, spec: Mapping[str, object], limit: int | None = None) -> RunData:
    mix_file = tmp_path / "mix.json"
    mix_file.write_text(json.dumps(spec), encoding="utf-8")
    mix = mixing.load_mix(mix_file)
    sources = mixing.locate(mix, str(tmp_path), tmp_path / "cache")
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return data.prepare(mix, sources, work, snippets_per_review=0.5, seed=1, limit=limit)


def test_prepare_writes_each_kept_row_once_with_its_split_and_the_snippets(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "long.jsonl", _reviews(300, "lovely", 1) + _reviews(300, "awful", 0))
    write_jsonl(tmp_path / "short.jsonl", [(f"ok {i}", i % 2) for i in range(200)])
    prepared = _prepared(
        tmp_path,
        {"corpora": [
            {"name": "long", "path": "long.jsonl", "domain": "shop", "snippets": True},
            {"name": "short", "path": "short.jsonl", "domain": "chat"},
        ]},
    )  # fmt: skip
    everything = list(prepared.rows({"train", "validation", "test"}, data.KINDS))
    assert everything == list(prepared.rows({"train", "validation", "test"}, data.KINDS))
    corpus_rows = [r for r in everything if r.kind == data.ROW]
    assert len(corpus_rows) == 800 == prepared.size({"train", "validation", "test"})
    for row in corpus_rows:  # the split is the text's, whatever the corpus
        assert row.split == splits.bucket(splits.key_hash(row.text))
    snippets = [r for r in everything if r.kind != data.ROW]
    assert snippets and {r.corpus for r in snippets} == {"long"}
    assert {r.split for r in snippets if r.kind == data.SNIPPET} == {"train", "validation"}
    assert {r.split for r in snippets if r.kind == data.CALIBRATION_SNIPPET} == {"validation"}
    assert all(len(r.text.split()) <= 25 for r in snippets)
    validation_reviews = sum(
        1 for r in corpus_rows if r.corpus == "long" and r.split == "validation"
    )
    assert prepared.size({"validation"}, {data.CALIBRATION_SNIPPET}) == validation_reviews
    table = prepared.table()
    assert (
        table["domains"]["chat"]["train"]
        == prepared.label_counts({"train"})[("short", 0)]
        + (prepared.label_counts({"train"})[("short", 1)])
    )
    assert set(table["corpora"]["long"]) >= {"train", "snippets_from_train", "calibration_snippets"}


def test_limit_keeps_about_that_many_rows_of_each_corpus(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "big.jsonl", [(f"text number {i}", i % 2) for i in range(4000)], "a")
    write_jsonl(tmp_path / "small.jsonl", [(f"other text {i}", i % 2) for i in range(400)], "b")
    spec = {"corpora": [{"name": "big", "path": "big.jsonl", "domain": "a"},
                        {"name": "small", "path": "small.jsonl", "domain": "b"}]}  # fmt: skip
    prepared = _prepared(tmp_path, spec, limit=200)
    kept = prepared.label_counts({"train", "validation", "test"})
    for corpus in ("big", "small"):
        assert 150 <= kept[(corpus, 0)] + kept[(corpus, 1)] <= 250


def _training_only(n: int) -> list[tuple[str, int]]:
    """`n` texts whose split is train, alternating labels."""
    texts = (f"text {i}" for i in range(10_000))
    train = [t for t in texts if splits.bucket(splits.key_hash(t)) == "train"]
    return [(text, i % 2) for i, text in enumerate(train[:n])]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([(f"great {i}", 1) for i in range(300)], "single class (positive)"),
        (_training_only(20), "no validation rows"),
    ],
)
def test_data_that_cannot_make_a_model_is_refused_before_training(
    tmp_path: Path, rows: list[tuple[str, int]], message: str
) -> None:
    write_jsonl(tmp_path / "mine.jsonl", rows, "x")
    with pytest.raises(DataError, match=re.escape(message)):
        _prepared(tmp_path, {"corpora": [{"name": "mine", "path": "mine.jsonl", "domain": "x"}]})
