"""Data: labelled texts from the IMDB archive, an extracted aclImdb directory, or a CSV/JSONL file.

Every loader returns the same `LabelledData`, so the rest of the pipeline never cares where the
texts came from. Bad input raises `DataError` naming the file and the row, because a user
retraining on their own export needs to know *which* line to fix, not that "something is wrong".

Each source is tagged with the domain its texts come from (`DataSource`: IMDB is "movie"), so
that a run over several corpora can weigh, split and report them per domain.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

logger = logging.getLogger(__name__)

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_DOMAIN = "movie"
NEGATIVE, POSITIVE = 0, 1
_LABEL_WORDS = {"0": NEGATIVE, "1": POSITIVE, "negative": NEGATIVE, "positive": POSITIVE}
# Matches `aclImdb/train/pos/123_9.txt`; `unsup/` and the bag-of-words files never match.
_IMDB_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/[^/]+\.txt$")


class DataError(ValueError):
    """The training data cannot be used; the message names the file (and row) at fault."""


@dataclass(frozen=True)
class Split:
    """Texts and their 0/1 labels, index-aligned: the one shape every part of training uses."""

    texts: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def __add__(self, other: Split) -> Split:
        return Split(self.texts + other.texts, np.concatenate([self.labels, other.labels]))

    def sample(self, limit: int | None, seed: int) -> Split:
        """A seeded random subset for quick runs (tests, demos); None keeps everything."""
        if limit is None or limit >= len(self.texts):
            return self
        keep = np.sort(np.random.default_rng(seed).permutation(len(self.texts))[:limit])
        return Split([self.texts[i] for i in keep], self.labels[keep])


@dataclass(frozen=True)
class DataSource:
    """Where labelled texts come from (URL or path) and the domain they are about."""

    location: str
    domain: str

    @classmethod
    def at(cls, location: str, domain: str | None = None) -> DataSource:
        """`location` tagged with `domain`; by default IMDB is "movie" and a file its stem."""
        return cls(location, domain or default_domain(location))


def default_domain(location: str) -> str:
    """IMDB's archive or directory is about movies; a user's file is named after itself."""
    name = location.rstrip("/").rsplit("/", 1)[-1]
    if location == IMDB_URL or name.startswith("aclImdb") or name.endswith((".tar.gz", ".tgz")):
        return IMDB_DOMAIN
    return name.split(".", 1)[0] or "custom"


@dataclass(frozen=True)
class LabelledData:
    """`train` for fitting (split again into fit and validation later), `test` for the report."""

    train: Split
    test: Split
    source: str
    sha256: str
    domain: str = IMDB_DOMAIN


@dataclass(frozen=True)
class Splits:
    """The four splits a run uses, all cut from one `LabelledData`."""

    fit: Split
    validation: Split
    test: Split
    # Short sentences held out from the validation reviews: where calibration is hardest.
    validation_snippets: Split


def load_splits(
    source: DataSource,
    cache_dir: Path,
    validation_fraction: float,
    seed: int,
    limit: int | None = None,
) -> tuple[LabelledData, Splits]:
    """Load `source` and cut fit / validation (seeded), a `limit` of train and test texts, and
    one short snippet from each validation review."""
    dataset = load(source.location, cache_dir, seed=seed, domain=source.domain)
    train = dataset.train.sample(limit, seed)
    fit, validation = train_validation_split(train.texts, train.labels, validation_fraction, seed)
    snippets = short_snippets(validation.texts, validation.labels, 1.0, seed + 1)
    splits = Splits(fit, validation, dataset.test.sample(limit, seed), snippets)
    logger.info(
        "Data (%s): %d train, %d validation, %d test",
        source.domain,
        len(fit),
        len(validation),
        len(splits.test),
    )
    return dataset, splits


def load(
    source: str,
    cache_dir: Path,
    test_fraction: float = 0.2,
    seed: int = 42,
    domain: str | None = None,
) -> LabelledData:
    """Load `source`: a URL (downloaded once into `cache_dir`), a `.tar.gz`, a directory, or a file.

    CSV and JSON Lines files carry no official test split, so `test_fraction` of their rows is held
    out (with `seed`) for the evaluation report.
    """
    path = (
        download(source, cache_dir) if source.startswith(("http://", "https://")) else Path(source)
    )
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        train, test = _read_imdb_directory(path)
        digest = _directory_sha256(path)
    elif path.name.endswith((".tar.gz", ".tgz", ".tar")):
        train, test = _read_imdb_archive(path)
        digest = file_sha256(path)
    elif path.suffix.lower() == ".csv":
        train, test = holdout(_check_rows(path, _read_csv(path)), test_fraction, seed)
        digest = file_sha256(path)
    elif path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        train, test = holdout(_check_rows(path, _read_jsonl(path)), test_fraction, seed)
        digest = file_sha256(path)
    else:
        raise DataError(
            f"{path}: unsupported data file; expected .tar.gz, a directory, .csv or .jsonl"
        )
    return LabelledData(train, test, str(source), digest, domain or default_domain(source))


def download(url: str, cache_dir: Path) -> Path:
    """Fetch `url` into `cache_dir` unless already there; a partial download never looks done."""
    target = cache_dir / url.rstrip("/").rsplit("/", 1)[-1]
    if target.exists():
        logger.info("Using cached %s", target)
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    logger.info("Downloading %s to %s", url, target)
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60.0) as response:
            response.raise_for_status()
            with partial.open("wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise DataError(f"{url}: download failed: {exc}") from exc
    partial.rename(target)
    return target


def train_validation_split(
    texts: list[str], labels: np.ndarray, validation_fraction: float, seed: int
) -> tuple[Split, Split]:
    """Shuffle with `seed` and cut off `validation_fraction` for early stopping and calibration."""
    return holdout(Split(texts, labels), validation_fraction, seed)


def holdout(data: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    order = np.random.default_rng(seed).permutation(len(data.texts))
    cut = len(order) - round(len(order) * fraction)
    kept, held = order[:cut], order[cut:]
    return (
        Split([data.texts[i] for i in kept], data.labels[kept]),
        Split([data.texts[i] for i in held], data.labels[held]),
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _directory_sha256(root: Path) -> str:
    """A content hash of the reviews themselves, so the card identifies the data, not the path."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*.txt") if _IMDB_MEMBER.search(p.as_posix())):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _read_imdb_archive(path: Path) -> tuple[Split, Split]:
    found: dict[str, list[tuple[str, str, int]]] = {"train": [], "test": []}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                match = _IMDB_MEMBER.search(member.name)
                if not (match and member.isfile()):
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                text = handle.read().decode("utf-8", errors="replace")
                split, polarity = match.groups()
                found[split].append(
                    (member.name, text, POSITIVE if polarity == "pos" else NEGATIVE)
                )
    except (tarfile.TarError, zlib.error, OSError, EOFError) as exc:
        raise DataError(f"{path}: unreadable archive: {exc}") from exc
    return _imdb_splits(path, found)


def _read_imdb_directory(root: Path) -> tuple[Split, Split]:
    found: dict[str, list[tuple[str, str, int]]] = {"train": [], "test": []}
    for file in root.rglob("*.txt"):
        match = _IMDB_MEMBER.search(file.as_posix())
        if match:
            split, polarity = match.groups()
            text = file.read_text(encoding="utf-8", errors="replace")
            found[split].append(
                (file.as_posix(), text, POSITIVE if polarity == "pos" else NEGATIVE)
            )
    return _imdb_splits(root, found)


def _imdb_splits(path: Path, found: dict[str, list[tuple[str, str, int]]]) -> tuple[Split, Split]:
    splits = []
    for name in ("train", "test"):
        rows = sorted(found[name])  # archive and directory order differ; the data must not
        if not rows:
            raise DataError(f"{path}: no reviews under {name}/pos or {name}/neg (aclImdb layout)")
        for member, text, _ in rows:
            if not text.strip():
                raise DataError(f"{path}: {member}: empty review text")
        split = Split([t for _, t, _ in rows], np.array([y for _, _, y in rows], dtype=np.float32))
        _check_two_classes(path, split.labels, f"the {name} split")
        splits.append(split)
    return splits[0], splits[1]


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise DataError(f"{path}: empty file")
        missing = {"text", "label"} - set(reader.fieldnames)
        if missing:
            raise DataError(
                f"{path}: row 1 (header): missing column(s) {', '.join(sorted(missing))}"
            )
        for row in reader:
            yield reader.line_num, dict(row)


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: row {line_number}: invalid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{path}: row {line_number}: expected a JSON object")
            missing = {"text", "label"} - row.keys()
            if missing:
                raise DataError(
                    f"{path}: row {line_number}: missing key(s) {', '.join(sorted(missing))}"
                )
            yield line_number, row


def _check_rows(path: Path, rows: Iterable[tuple[int, dict[str, object]]]) -> Split:
    texts: list[str] = []
    labels: list[int] = []
    for row_number, row in rows:
        text = row["text"]
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}: row {row_number}: empty text")
        label = _LABEL_WORDS.get(str(row["label"]).strip().lower())
        if label is None:
            raise DataError(
                f"{path}: row {row_number}: label {row['label']!r} is not one of "
                "0, 1, negative, positive"
            )
        texts.append(text)
        labels.append(label)
    if not texts:
        raise DataError(f"{path}: empty file (no rows)")
    split = Split(texts, np.array(labels, dtype=np.float32))
    _check_two_classes(path, split.labels, "the file")
    return split


def _check_two_classes(path: Path, labels: np.ndarray, where: str) -> None:
    if len(np.unique(labels)) < 2:
        only = "positive" if labels[0] == POSITIVE else "negative"
        raise DataError(f"{path}: {where} has a single class ({only}); both labels are needed")


_SENTENCE_END = re.compile(r"(?:<br\s*/?>)+|(?<=[.!?;])\s+")


def short_snippets(
    texts: list[str],
    labels: np.ndarray,
    per_review: float,
    seed: int,
    min_words: int = 2,
    max_words: int = 25,
) -> Split:
    """Random sentences cut from reviews, labelled with their review's label.

    Users type "I loved it!", not 230-word reviews; snippets teach the model (and the length-aware
    calibration) what short inputs look like. The labels are noisy — a neutral sentence from a
    positive review is labelled positive — which keeps short-text confidence honest rather than
    inflated. `per_review` may be fractional (0.5 = one snippet from every other review).
    """
    rng = np.random.default_rng(seed)
    snippet_texts: list[str] = []
    snippet_labels: list[float] = []
    whole = int(per_review)
    for text, label in zip(texts, labels.tolist(), strict=True):
        sentences = [
            s.strip() for s in _SENTENCE_END.split(text) if min_words <= len(s.split()) <= max_words
        ]
        if not sentences:
            continue
        count = whole + int(rng.random() < per_review - whole)
        for index in rng.choice(len(sentences), size=min(count, len(sentences)), replace=False):
            snippet_texts.append(sentences[index])
            snippet_labels.append(label)
    return Split(snippet_texts, np.array(snippet_labels, dtype=np.float32))
