"""The labelled corpora: which are registered, what they may be used for, and how their rows
are read.

The default model trains on IMDB plus the nine corpora in ``../shared/datasets`` (its README
gives their sources, label rules and terms); `REGISTRY` names them with their files, domains and
terms. Every source, registered or a user's own, is read as a stream of `Row`s: an aclImdb
archive or directory (with IMDB's official split), or a JSON Lines / CSV file. Which corpora a
run uses is the mix's business (`training.mixing`), which split a row lands in the split rule's
(`training.splits`).

Bad input raises `DataError` naming the file (and row, or archive member), because a user
retraining on their own export needs to know *which* line to fix.
"""

from __future__ import annotations

import csv
import gzip
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

logger = logging.getLogger(__name__)


IMDB = "imdb"
IMDB_ARCHIVE = "aclImdb_labelled.tar.gz"
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
# Matches `aclImdb/train/pos/123_9.txt`; `unsup/` and the bag-of-words files never match.
_IMDB_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/[^/]+\.txt$")
_LABELS = {"0": 0, "1": 1, "negative": 0, "positive": 1}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


class DataError(ValueError):
    """The training data cannot be used; the message names the file (and row) at fault."""


@dataclass(frozen=True)
class Corpus:
    """One registered corpus: its file, its domain(s), its terms as the datasets README states
    them (several are for research use only: the model card lists them for users), and whether
    its texts are long reviews that short training snippets are cut from."""

    name: str
    file: str
    domains: tuple[str, ...]
    terms: str
    long_reviews: bool = False


REGISTRY: tuple[Corpus, ...] = (
    Corpus(IMDB, IMDB_ARCHIVE, ("movie",),
           "not stated in the datasets README (Maas et al., ACL 2011, Large Movie Review Dataset)",
           long_reviews=True),
    Corpus("pros_cons", "pros_cons.jsonl.gz", ("product",), "CC BY 4.0 International"),
    Corpus("hu_liu_product_reviews", "hu_liu_product_reviews.jsonl.gz", ("product",), "unstated"),
    Corpus("blitzer_mds", "blitzer_mds.jsonl.gz", ("books", "dvd", "product"), "unstated",
           long_reviews=True),
    Corpus("airline_tweets", "airline_tweets.jsonl.gz", ("service",),
           "unstated in the source repository"),
    Corpus("tripadvisor_hotels_2k", "tripadvisor_hotels_2k.jsonl.gz", ("service",),
           "unstated in the source repository"),
    Corpus("womens_clothing_1k", "womens_clothing_1k.jsonl.gz", ("product",),
           "unstated in the source repository"),
    Corpus("yelp_reviews_10k", "yelp_reviews_10k.jsonl.gz", ("food",),
           "unstated in the source repository; Yelp's dataset terms of use restrict use "
           "(academic / non-commercial): check them before use in a product",
           long_reviews=True),
    Corpus("tweeteval_sentiment", "tweeteval_sentiment.jsonl.gz", ("social",),
           "released without any restrictions, but restrictions may apply to individual tasks "
           "(derived from existing datasets) or Twitter (main data source)"),
    Corpus("sentiment140_test", "sentiment140_test.jsonl.gz", ("social",), "unstated"),
)  # fmt: skip
BY_NAME = {corpus.name: corpus for corpus in REGISTRY}


@dataclass(frozen=True)
class Row:
    """One labelled text; `official` is the split its source publishes (IMDB's), or None."""

    text: str
    label: int
    corpus: str
    domain: str
    official: str | None = None


# --- reading --------------------------------------------------------------------------------


def is_imdb_layout(path: Path) -> bool:
    """An aclImdb archive or extracted directory (IMDB's own train/test split)."""
    return path.is_dir() or path.name.endswith(ARCHIVE_SUFFIXES)


def read_source(path: Path, corpus: str, domain: str | None = None) -> Iterator[Row]:
    """Rows of an aclImdb archive or directory, or of a JSON Lines / CSV file (optionally
    gzipped). IMDB's reviews are about movies unless `domain` says otherwise."""
    if path.is_dir():
        yield from read_imdb_directory(path, corpus, domain or "movie")
    elif path.name.endswith(ARCHIVE_SUFFIXES):
        yield from read_imdb(path, corpus, domain or "movie")
    else:
        yield from read_file(path, corpus, domain)


def read_file(path: Path, corpus: str, domain: str | None = None) -> Iterator[Row]:
    """Rows of a JSON Lines file (optionally gzipped) or a CSV file with text and label columns.

    A row's own "domain" field wins over `domain`; a user's file without one needs `domain`.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = path.name.removesuffix(".gz")
    if not name.endswith((".csv", ".jsonl", ".ndjson", ".json")):
        raise DataError(
            f"{path}: unsupported data file; expected an aclImdb .tar.gz or directory, "
            ".csv or .jsonl (optionally .gz)"
        )
    try:
        with (
            gzip.open(path, "rt", encoding="utf-8", newline="")
            if path.name.endswith(".gz")
            else path.open(encoding="utf-8", newline="")
        ) as lines:
            records = (
                _csv_records(path, lines) if name.endswith(".csv") else _json_records(path, lines)
            )
            for number, record in records:
                yield _row(path, number, record, corpus, domain)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable file: {exc}") from exc


def _csv_records(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, dict[str, object]]]:
    reader = csv.DictReader(lines)
    if reader.fieldnames is None:
        raise DataError(f"{path}: empty file")
    missing = {"text", "label"} - set(reader.fieldnames)
    if missing:
        raise DataError(f"{path}: row 1 (header): missing column(s) {', '.join(sorted(missing))}")
    for record in reader:
        yield reader.line_num, dict(record)


def _json_records(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, dict[str, object]]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: row {number}: invalid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise DataError(f"{path}: row {number}: expected a JSON object")
        missing = {"text", "label"} - record.keys()
        if missing:
            raise DataError(f"{path}: row {number}: missing key(s) {', '.join(sorted(missing))}")
        yield number, record


def _row(
    path: Path, number: int, record: dict[str, object], corpus: str, domain: str | None
) -> Row:
    text, raw_label = record.get("text"), record.get("label")
    label = _LABELS.get(str(raw_label).strip().lower())
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{path}: row {number}: empty text")
    if label is None:
        raise DataError(
            f"{path}: row {number}: label {raw_label!r} is not one of 0, 1, negative, positive"
        )
    row_domain = record.get("domain") or domain
    if not isinstance(row_domain, str) or not row_domain:
        raise DataError(f"{path}: row {number}: no domain (give the file a domain in the mix)")
    return Row(text, label, corpus, row_domain)


def _imdb_row(where: str, text: str, corpus: str, domain: str) -> Row | None:
    match = _IMDB_MEMBER.search(where)
    if match is None:
        return None
    if not text.strip():
        raise DataError(f"{where}: empty review text")
    return Row(text, 1 if match.group(2) == "pos" else 0, corpus, domain, match.group(1))


def read_imdb(path: Path, corpus: str = IMDB, domain: str = "movie") -> Iterator[Row]:
    """IMDB reviews from an aclImdb archive, in member order, with their official split."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if not (member.isfile() and _IMDB_MEMBER.search(member.name)):
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                text = handle.read().decode("utf-8", errors="replace")
                row = _imdb_row(f"{path}: {member.name}", text, corpus, domain)
                if row is not None:
                    yield row
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: unreadable archive: {exc}") from exc


def read_imdb_directory(root: Path, corpus: str = IMDB, domain: str = "movie") -> Iterator[Row]:
    """IMDB reviews from an extracted aclImdb directory, in path order."""
    for file in sorted(root.rglob("*.txt")):
        if _IMDB_MEMBER.search(file.as_posix()):
            text = file.read_text(encoding="utf-8", errors="replace")
            row = _imdb_row(file.as_posix(), text, corpus, domain)
            if row is not None:
                yield row


def file_sha256(path: Path) -> str:
    """The content hash the card records, so it identifies the data, not the path (an
    extracted directory: its reviews' paths and bytes)."""
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*.txt") if _IMDB_MEMBER.search(p.as_posix())):
            digest.update(file.relative_to(path).as_posix().encode())
            digest.update(file.read_bytes())
        return digest.hexdigest()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))
