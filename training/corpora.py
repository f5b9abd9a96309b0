"""The labelled corpora of the mix: where they are, how they are read, what they may be used for,
and which split each text belongs to.

The default model trains on IMDB plus the nine corpora in ``../shared/datasets`` (its README
gives their sources, label rules and terms). Three things must hold whatever the mix:

* **Splits that cannot leak.** A text's split is a function of its *normalised* text only
  (lowercase, non-alphanumerics removed, whitespace collapsed), so a duplicate that differs in
  case, spacing or punctuation lands in the same split in every corpus. IMDB's official test
  split stays exactly as published, so IMDB figures stay comparable with every earlier version.
* **Bounded memory.** Corpora are read as streams of rows, twice: `KeyIndex.build` keeps 8 bytes
  of hash per distinct text (and its labels and corpora), then `KeyIndex.assign` yields each kept
  row with its split. No list of texts is ever held.
* **Weights chosen on validation.** A `Mix` names the corpora and their weight multipliers (one
  value, or several for validation to choose from); `row_weights` turns row counts into
  per-(corpus, label) sample weights: the same total per corpus, labels balanced inside each
  corpus, times the corpus's multiplier.

Bad input raises `DataError` naming the file (and row, or archive member), because a user
retraining on their own export needs to know *which* line to fix.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import itertools
import json
import logging
import re
import tarfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

import httpx

logger = logging.getLogger(__name__)

SplitName = Literal["train", "validation", "test"]
SPLIT_SALT = b"sentiment-split-v1\0"
TRAIN_FRACTION = 0.70
VALIDATION_FRACTION = 0.15
IMDB = "imdb"
IMDB_ARCHIVE = "aclImdb_labelled.tar.gz"
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
MIXES_DIR = Path(__file__).with_name("mixes")
_NON_ALPHANUMERIC = re.compile(r"[^0-9a-z]+")
# Matches `aclImdb/train/pos/123_9.txt`; `unsup/` and the bag-of-words files never match.
_IMDB_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/[^/]+\.txt$")
_LABELS = {"0": 0, "1": 1, "negative": 0, "positive": 1}
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


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


def sample_position(hash_value: int) -> float:
    """Where a text falls in [0, 1) for `--limit` samples: the hash's low 32 bits, independent
    of the split (its high bits), so a sample keeps every split's share."""
    return (hash_value & 0xFFFFFFFF) / 2**32


# --- reading --------------------------------------------------------------------------------


def is_imdb_layout(path: Path) -> bool:
    """An aclImdb archive or extracted directory (IMDB's own train/test split)."""
    return path.is_dir() or path.name.endswith(_ARCHIVE_SUFFIXES)


def read_source(path: Path, corpus: str, domain: str | None = None) -> Iterator[Row]:
    """Rows of an aclImdb archive or directory, or of a JSON Lines / CSV file (optionally
    gzipped). IMDB's reviews are about movies unless `domain` says otherwise."""
    if path.is_dir():
        yield from read_imdb_directory(path, corpus, domain or "movie")
    elif path.name.endswith(_ARCHIVE_SUFFIXES):
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


# --- the mix ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixEntry:
    """A registered corpus (by name) or a user's file or IMDB copy (`location`: path or URL,
    with a domain), with the weight multipliers validation chooses from (one: no choice)."""

    name: str
    weights: tuple[float, ...] = (1.0,)
    location: str | None = None
    domain: str | None = None
    terms: str | None = None
    snippets: bool | None = None  # None: the registry's `long_reviews` (a user's file: no)

    @property
    def registered(self) -> Corpus | None:
        return BY_NAME.get(self.name) if self.location is None else None

    @property
    def cuts_snippets(self) -> bool:
        if self.snippets is not None:
            return self.snippets
        corpus = self.registered
        return corpus.long_reviews if corpus is not None else False

    def describe(self) -> dict[str, object]:
        corpus = self.registered
        return {
            "file": corpus.file if corpus is not None else self.location,
            "domains": list(corpus.domains) if corpus is not None else [self.domain or "movie"],
            "terms": corpus.terms
            if corpus is not None
            else (self.terms or "a user's own data (terms as its owner states them)"),
            "weights_tried": list(self.weights),
            "snippets": self.cuts_snippets,
        }


@dataclass(frozen=True)
class Mix:
    entries: tuple[MixEntry, ...]
    source: str = "options"  # the mix file it came from, for the card

    def __post_init__(self) -> None:
        if not self.entries:
            raise DataError(f"{self.source}: the mix names no corpus")
        if len({e.name for e in self.entries}) != len(self.entries):
            raise DataError(f"{self.source}: a corpus is named twice")

    def candidates(self) -> list[dict[str, float]]:
        """Every combination of the entries' weight multipliers, the first value of each first."""
        names = [e.name for e in self.entries]
        return [
            dict(zip(names, combination, strict=True))
            for combination in itertools.product(*(e.weights for e in self.entries))
        ]

    def with_entry(self, entry: MixEntry) -> Mix:
        return Mix((*self.entries, entry), self.source)


def mix_of(location: str, domain: str | None = None) -> Mix:
    """A mix of one source: an aclImdb archive/directory/URL or a user's CSV / JSON Lines file."""
    name = location.rstrip("/").rsplit("/", 1)[-1]
    stem = name.split(".", 1)[0] or "custom"
    if is_imdb_layout(Path(location)) or (is_url(location) and name.endswith(_ARCHIVE_SUFFIXES)):
        return Mix((MixEntry(IMDB if stem.startswith("aclImdb") else stem, location=location,
                             domain=domain or "movie"),), location)  # fmt: skip
    return Mix((MixEntry(stem, location=location, domain=domain or stem),), location)


def load_mix(path: Path) -> Mix:
    """A mix file: ``{"corpora": [{"name": "imdb", "weight": [3, 6]}, {"name": "pros_cons"},
    {"name": "tickets", "path": "tickets.csv", "domain": "support", "terms": "..."}]}``.

    A registered corpus is named; anything else needs a path (relative to the mix file, or a
    URL) and a domain. A weight may list several values: validation chooses among them.
    """
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        items = spec["corpora"]
        if not isinstance(items, list):
            raise TypeError("corpora must be a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a mix file ({exc})") from exc
    entries = []
    for number, item in enumerate(items, start=1):
        where = f"{path}: corpus {number}"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise DataError(f"{where}: needs a name")
        unknown = set(item) - {"name", "weight", "path", "domain", "terms", "snippets"}
        if unknown:
            raise DataError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        name, file, domain = item["name"], item.get("path"), item.get("domain")
        raw = item.get("weight", 1.0)
        weights = tuple(raw) if isinstance(raw, list) else (raw,)
        if not weights or not all(isinstance(w, int | float) and w > 0 for w in weights):
            raise DataError(f"{where}: weight must be a positive number or a list of them")
        if file is None and name not in BY_NAME:
            raise DataError(
                f"{where}: {name!r} is not registered ({', '.join(BY_NAME)}); give a path"
            )
        if file is not None and not domain:
            raise DataError(f"{where}: a user's file needs a domain")
        location = None
        if file is not None:
            location = str(file) if is_url(str(file)) else str(path.parent / str(file))
        entries.append(
            MixEntry(
                name,
                tuple(float(w) for w in weights),
                location,
                domain,
                item.get("terms"),
                item.get("snippets"),
            )
        )
    return Mix(tuple(entries), str(path))


def default_mix(name: str = "default") -> Mix:
    """A mix shipped with the package (`training/mixes/NAME.json`): "default" is the shipped
    model's recipe, "imdb" the tutorial's data."""
    mix = load_mix(MIXES_DIR / f"{name}.json")
    return Mix(mix.entries, f"training/mixes/{name}.json")


def row_weights(
    counts: Counter[tuple[str, int]], multipliers: dict[str, float]
) -> dict[tuple[str, int], float]:
    """Sample weight of a row of each (corpus, label): every corpus the same total (the mean
    corpus size) times its multiplier, each label half of it; normalised to mean 1 per row."""
    corpora = sorted({corpus for corpus, _ in counts})
    sizes = {c: counts[(c, 0)] + counts[(c, 1)] for c in corpora}
    share = sum(sizes.values()) / len(corpora)
    raw: dict[tuple[str, int], float] = {}
    for (corpus, label), n in counts.items():
        labels_present = sum(counts[(corpus, other)] > 0 for other in (0, 1))
        multiplier = multipliers.get(corpus, 1.0)
        raw[(corpus, label)] = share * multiplier / labels_present / n if n else 0.0
    mean = sum(raw[k] * n for k, n in counts.items()) / sum(counts.values())
    return {key: value / mean for key, value in raw.items()}


# --- where the files are ----------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A mix entry and the local file or directory its rows are read from."""

    entry: MixEntry
    path: Path
    origin: str  # where it came from (a path or the URL it was downloaded from)

    def rows(self) -> Iterator[Row]:
        return read_source(self.path, self.entry.name, self.entry.domain)


def locate(mix: Mix, datasets: str, cache_dir: Path) -> list[Source]:
    """The file of every entry; all missing ones are named in one error, before any download.

    Registered corpora are looked up in `datasets` (a directory, or an http(s) base URL whose
    files are downloaded once into the cache). IMDB not found there is downloaded from its
    official URL, as for any user without the datasets directory.
    """
    planned: list[tuple[MixEntry, str]] = []  # each entry and its path or URL
    missing: list[str] = []
    for entry in mix.entries:
        corpus = entry.registered
        if corpus is None:
            location = cast(str, entry.location)
        elif is_url(datasets):
            location = f"{datasets.rstrip('/')}/{corpus.file}"
        elif (Path(datasets) / corpus.file).is_file() or corpus.name != IMDB:
            location = str(Path(datasets) / corpus.file)
        else:
            location = IMDB_URL
        if not (is_url(location) or Path(location).exists()):
            missing.append(location)
        planned.append((entry, location))
    if missing:
        raise DataError(
            f"{mix.source}: no such file: {', '.join(missing)} (--datasets names the directory "
            "that holds the registered corpora; --mix FILE or --data FILE trains on others)"
        )
    return [
        Source(entry, download(location, cache_dir / _download_dir(entry)), location)
        if is_url(location)
        else Source(entry, Path(location), location)
        for entry, location in planned
    ]


def _download_dir(entry: MixEntry) -> str:
    """Downloads of registered corpora apart from a user's own files (and IMDB's archive)."""
    return "datasets" if entry.registered is not None and entry.name != IMDB else "."


# --- splits -----------------------------------------------------------------------------------


@dataclass
class DuplicateReport:
    """What the split rule found and dropped; the model card states it."""

    rows: int = 0
    distinct_texts: int = 0
    rows_by_corpus: Counter[str] = field(default_factory=Counter)
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
            report.rows_by_corpus[row.corpus] += 1
        report.distinct_texts = len(index.labels)
        for (_, source), n in index.copies.items():
            if n > 1:
                report.repeats_within_corpus[source] += n - 1
        for key, sources in index.sources.items():
            if len(sources) > 1:
                report.shared_across_corpora[" + ".join(sorted(sources))] += 1
            report.conflicting_texts += index.labels[key] == 0b11
        return index

    def split_of(self, row: Row, key: int) -> SplitName | str:
        """The row's split, or why the rule drops it (see `assign`)."""
        if row.official == "test":
            return "test"
        if self.labels[key] == 0b11:
            return "conflicting labels"
        official_test = [s for s in self.sources[key] if s.endswith("/test")]
        if official_test:
            # A copy of a published test text (IMDB's) is test elsewhere, and never trains.
            return f"copy of an {official_test[0]} text" if row.official else "test"
        split = bucket(key)
        if row.official is not None and split == "test":
            # A corpus with its own test split trains on its test bucket, unless the same text
            # is test in another corpus.
            return "test elsewhere" if len(self.sources[key]) > 1 else "train"
        return split

    def assign(
        self, rows: Iterable[Row], report: DuplicateReport
    ) -> Iterator[tuple[Row, SplitName, int]]:
        """Every kept row with its split and key hash (see `assign_splits` for the rule)."""
        kept: set[tuple[int, str, int]] = set()  # only texts that repeat inside a corpus
        for row in rows:
            key = key_hash(row.text)
            decision = self.split_of(row, key)
            if decision not in _SPLITS:
                report.dropped[decision] += 1
                continue
            if row.official != "test" and self.copies[(key, _source(row))] > 1:
                if (key, row.corpus, row.label) in kept:
                    report.dropped["repeat within a corpus"] += 1
                    continue
                kept.add((key, row.corpus, row.label))
            yield row, cast(SplitName, decision), key


def _source(row: Row) -> str:
    return row.corpus if row.official is None else f"{row.corpus}/{row.official}"


_SPLITS: frozenset[str] = frozenset(("train", "validation", "test"))


def assign_splits(
    rows: Callable[[], Iterable[Row]], report: DuplicateReport
) -> Iterator[tuple[Row, SplitName]]:
    """Every kept row with its split; `rows` is called twice (index, then assignment), and
    `report` is filled as it goes.

    The rule, per normalised text: an official test text stays test (IMDB's 25,000 reviews,
    untouched); a text seen with both labels is dropped; a copy of an official test text (an
    IMDB test review) is test in other corpora and dropped from its own corpus's train split;
    otherwise the hash's bucket (70/15/15) decides.
    Repeats of a text with the same label inside one corpus are kept once.
    """
    index = KeyIndex.build(rows(), report)
    for row, split, _ in index.assign(rows(), report):
        yield row, split
