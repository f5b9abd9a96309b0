"""The labelled corpora of the mix: where they are, what they may be used for, and which split
each text belongs to.

The default model trains on IMDB plus the nine corpora in ``../shared/datasets`` (its README
gives their sources, label rules and terms). Three things must hold whatever the mix:

* **Splits that cannot leak.** A text's split is a function of its *normalised* text only
  (lowercase, non-alphanumerics removed, whitespace collapsed), so a duplicate that differs in
  case, spacing or punctuation lands in the same split in every corpus. IMDB's official test
  split stays exactly as published, so IMDB figures stay comparable with every earlier version.
* **Bounded memory.** Corpora are read as streams of rows, twice: `KeyIndex.build` keeps 8 bytes
  of hash per distinct text (and its labels and corpora), then `assign_splits` yields each kept
  row with its split. No list of texts is ever held.
* **Weights chosen on validation.** `Mix` names the corpora and their weights; `row_weights`
  turns row counts into per-(corpus, label) sample weights: the same total per corpus, labels
  balanced inside each corpus, times the corpus's multiplier (docs: /work/notes/model-recipe.md).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import tarfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from training.data import DataError

SplitName = Literal["train", "validation", "test"]
SPLIT_SALT = b"sentiment-split-v1\0"
TRAIN_FRACTION = 0.70
VALIDATION_FRACTION = 0.15
IMDB = "imdb"
IMDB_ARCHIVE = "aclImdb_labelled.tar.gz"
_NON_ALPHANUMERIC = re.compile(r"[^0-9a-z]+")
_IMDB_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/[^/]+\.txt$")
_LABELS = {"0": 0, "1": 1, "negative": 0, "positive": 1}


@dataclass(frozen=True)
class Corpus:
    """One labelled corpus: its file, its domain(s) and its terms as the datasets README states
    them (several are for research use only: the model card lists them for users)."""

    name: str
    file: str
    domains: tuple[str, ...]
    terms: str


REGISTRY: tuple[Corpus, ...] = (
    Corpus(IMDB, IMDB_ARCHIVE, ("movie",),
           "not stated in the datasets README (Maas et al., ACL 2011, Large Movie Review Dataset)"),
    Corpus("pros_cons", "pros_cons.jsonl.gz", ("product",), "CC BY 4.0 International"),
    Corpus("hu_liu_product_reviews", "hu_liu_product_reviews.jsonl.gz", ("product",), "unstated"),
    Corpus("blitzer_mds", "blitzer_mds.jsonl.gz", ("books", "dvd", "product"), "unstated"),
    Corpus("airline_tweets", "airline_tweets.jsonl.gz", ("service",),
           "unstated in the source repository"),
    Corpus("tripadvisor_hotels_2k", "tripadvisor_hotels_2k.jsonl.gz", ("service",),
           "unstated in the source repository"),
    Corpus("womens_clothing_1k", "womens_clothing_1k.jsonl.gz", ("product",),
           "unstated in the source repository"),
    Corpus("yelp_reviews_10k", "yelp_reviews_10k.jsonl.gz", ("food",),
           "unstated in the source repository; Yelp's dataset terms of use restrict use "
           "(academic / non-commercial): check them before use in a product"),
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


def normalise(text: str) -> str:
    """The text as the split rule sees it: lowercase, every run of non-alphanumerics one space.

    A text with nothing alphanumeric ("👍", ":(") keeps its lowercased, whitespace-collapsed
    form behind a NUL marker, so emoji-only texts do not all share the empty key.
    """
    lower = text.lower()
    key = " ".join(_NON_ALPHANUMERIC.sub(" ", lower).split())
    return key if key else "\0" + " ".join(lower.split())


def key_hash(text: str) -> int:
    """64-bit hash of the normalised text: what the split rule and the duplicate index keep."""
    digest = hashlib.sha256(SPLIT_SALT + normalise(text).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def bucket(hash_value: int) -> SplitName:
    """70 / 15 / 15 by the hash's position in [0, 1)."""
    position = hash_value / 2**64
    if position < TRAIN_FRACTION:
        return "train"
    return "validation" if position < TRAIN_FRACTION + VALIDATION_FRACTION else "test"


# --- reading --------------------------------------------------------------------------------


def read_file(path: Path, corpus: str, domain: str | None = None) -> Iterator[Row]:
    """Rows of a JSON Lines file (optionally gzipped) or a CSV file with text and label columns.

    A row's own "domain" field wins over `domain`; a user's file without one needs `domain`.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    is_csv = path.name.removesuffix(".gz").endswith(".csv")
    with (
        gzip.open(path, "rt", encoding="utf-8", newline="")
        if path.name.endswith(".gz")
        else path.open(encoding="utf-8", newline="")
    ) as lines:
        records: Iterable[tuple[int, dict[str, object]]]
        if is_csv:
            records = ((n, dict(r)) for n, r in enumerate(csv.DictReader(lines), start=2))
        else:
            records = _json_records(path, lines)
        for number, record in records:
            yield _row(path, number, record, corpus, domain)


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
        yield number, record


def _row(
    path: Path, number: int, record: dict[str, object], corpus: str, domain: str | None
) -> Row:
    text, label = record.get("text"), _LABELS.get(str(record.get("label", "")).strip().lower())
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{path}: row {number}: empty or missing text")
    if label is None:
        raise DataError(f"{path}: row {number}: label {record.get('label')!r} is not 0/1")
    row_domain = record.get("domain") or domain
    if not isinstance(row_domain, str) or not row_domain:
        raise DataError(f"{path}: row {number}: no domain (give the file a domain in the mix)")
    return Row(text, label, corpus, row_domain)


def read_imdb(path: Path) -> Iterator[Row]:
    """IMDB reviews from the official archive, in member order, with their official split."""
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                match = _IMDB_MEMBER.search(member.name)
                handle = archive.extractfile(member) if match and member.isfile() else None
                if match is None or handle is None:
                    continue
                text = handle.read().decode("utf-8", errors="replace")
                label = 1 if match.group(2) == "pos" else 0
                yield Row(text, label, IMDB, "movie", match.group(1))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path}: unreadable archive: {exc}") from exc


# --- the mix ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixEntry:
    """A registered corpus (by name) or a user's file (path + domain), with a weight multiplier."""

    name: str
    weight: float = 1.0
    path: Path | None = None
    domain: str | None = None


@dataclass(frozen=True)
class Mix:
    entries: tuple[MixEntry, ...]

    def rows(self, datasets: Path) -> Iterator[Row]:
        """Every row of the mix, corpus after corpus, as a stream."""
        for entry in self.entries:
            if entry.path is not None:
                yield from read_file(entry.path, entry.name, entry.domain)
            elif entry.name == IMDB:
                yield from read_imdb(datasets / IMDB_ARCHIVE)
            else:
                yield from read_file(datasets / BY_NAME[entry.name].file, entry.name)

    def multiplier(self, corpus: str) -> float:
        return next((e.weight for e in self.entries if e.name == corpus), 1.0)


def default_mix() -> Mix:
    """The shipped model's recipe: every registered corpus, IMDB's weight tripled."""
    return Mix(tuple(MixEntry(c.name, 3.0 if c.name == IMDB else 1.0) for c in REGISTRY))


def load_mix(path: Path) -> Mix:
    """A mix file: ``{"corpora": [{"name": "imdb", "weight": 3}, {"name": "tickets",
    "path": "tickets.csv", "domain": "support"}, ...]}``; relative paths are from the file."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        items = spec["corpora"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a mix file ({exc})") from exc
    entries = []
    for number, item in enumerate(items, start=1):
        name, weight = item.get("name"), float(item.get("weight", 1.0))
        file, domain = item.get("path"), item.get("domain")
        if not isinstance(name, str) or weight <= 0:
            raise DataError(f"{path}: corpus {number}: needs a name and a positive weight")
        if file is None and name not in BY_NAME:
            raise DataError(f"{path}: corpus {number}: {name!r} is not registered; give a path")
        if file is not None and not domain:
            raise DataError(f"{path}: corpus {number}: a user's file needs a domain")
        entries.append(MixEntry(name, weight, None if file is None else path.parent / file, domain))
    if len({e.name for e in entries}) != len(entries):
        raise DataError(f"{path}: a corpus is named twice")
    return Mix(tuple(entries))


def row_weights(counts: Counter[tuple[str, int]], mix: Mix) -> dict[tuple[str, int], float]:
    """Sample weight of a row of each (corpus, label): every corpus the same total (the mean
    corpus size) times its multiplier, each label half of it; normalised to mean 1 per row."""
    corpora = sorted({corpus for corpus, _ in counts})
    sizes = {c: counts[(c, 0)] + counts[(c, 1)] for c in corpora}
    share = sum(sizes.values()) / len(corpora)
    raw: dict[tuple[str, int], float] = {}
    for (corpus, label), n in counts.items():
        labels_present = sum(counts[(corpus, other)] > 0 for other in (0, 1))
        raw[(corpus, label)] = share * mix.multiplier(corpus) / labels_present / n if n else 0.0
    mean = sum(raw[k] * n for k, n in counts.items()) / sum(counts.values())
    return {key: value / mean for key, value in raw.items()}


# --- splits -----------------------------------------------------------------------------------


@dataclass
class DuplicateReport:
    """What the split rule found and dropped; the model card states it."""

    rows: int = 0
    distinct_texts: int = 0
    repeats_within_corpus: Counter[str] = field(default_factory=Counter)
    shared_across_corpora: Counter[str] = field(default_factory=Counter)
    conflicting_texts: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "distinct_texts": self.distinct_texts,
            "repeats_within_corpus": dict(self.repeats_within_corpus),
            "shared_across_corpora": dict(self.shared_across_corpora),
            "conflicting_texts": self.conflicting_texts,
            "dropped": dict(self.dropped),
        }


@dataclass
class KeyIndex:
    """Per normalised-text hash: the labels seen (bit 1 << label), the corpora (with the
    official split, e.g. "imdb/test"), and how often; ~100 bytes per distinct text."""

    labels: dict[int, int] = field(default_factory=dict)
    sources: dict[int, frozenset[str]] = field(default_factory=dict)
    copies: Counter[tuple[int, str]] = field(default_factory=Counter)

    @classmethod
    def build(cls, rows: Iterable[Row], report: DuplicateReport) -> KeyIndex:
        index = cls()
        for row in rows:
            key, source = key_hash(row.text), _source(row)
            index.labels[key] = index.labels.get(key, 0) | (1 << row.label)
            index.sources[key] = index.sources.get(key, frozenset()) | {source}
            index.copies[(key, source)] += 1
            report.rows += 1
        report.distinct_texts = len(index.labels)
        for (_, source), n in index.copies.items():
            if n > 1:
                report.repeats_within_corpus[source] += n - 1
        for key, sources in index.sources.items():
            if len(sources) > 1:
                report.shared_across_corpora[" + ".join(sorted(sources))] += 1
            report.conflicting_texts += index.labels[key] == 0b11
        return index

    def split_of(self, row: Row) -> SplitName | str:
        """The row's split, or why the rule drops it (see `assign_splits`)."""
        if row.official == "test":
            return "test"
        key = key_hash(row.text)
        if self.labels[key] == 0b11:
            return "conflicting labels"
        if "imdb/test" in self.sources[key]:
            return "copy of an IMDB test review" if row.corpus == IMDB else "test"
        split = bucket(key)
        if row.official is not None and split == "test":
            # A corpus with its own test split trains on its test bucket, unless the same text
            # is test in another corpus.
            return "test elsewhere" if len(self.sources[key]) > 1 else "train"
        return split


def _source(row: Row) -> str:
    return row.corpus if row.official is None else f"{row.corpus}/{row.official}"


_SPLITS: frozenset[str] = frozenset(("train", "validation", "test"))


def assign_splits(
    rows: Callable[[], Iterable[Row]], report: DuplicateReport
) -> Iterator[tuple[Row, SplitName]]:
    """Every kept row with its split; `rows` is called twice (index, then assignment), and
    `report` is filled as it goes.

    The rule, per normalised text: an official test text stays test (IMDB's 25,000 reviews,
    untouched); a text seen with both labels is dropped; a copy of an IMDB test review is test
    in other corpora and dropped from IMDB train; otherwise the hash's bucket (70/15/15) decides.
    Repeats of a text with the same label inside one corpus are kept once.
    """
    index = KeyIndex.build(rows(), report)
    kept: set[tuple[int, str, int]] = set()  # only texts that repeat inside a corpus
    for row in rows():
        decision = index.split_of(row)
        if decision not in _SPLITS:
            report.dropped[decision] += 1
            continue
        key = key_hash(row.text)
        if row.official != "test" and index.copies[(key, _source(row))] > 1:
            if (key, row.corpus, row.label) in kept:
                report.dropped["repeat within a corpus"] += 1
                continue
            kept.add((key, row.corpus, row.label))
        yield row, cast(SplitName, decision)
