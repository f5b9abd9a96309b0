"""Which split each text belongs to, decided so that no text can leak between splits.

A text's split is a function of its *normalised* text only (lowercase, non-alphanumerics
removed, whitespace collapsed), so a duplicate that differs in case, spacing or punctuation lands
in the same split in every corpus. IMDB's official test split stays exactly as published, so
IMDB figures stay comparable with every earlier version.

Memory stays bounded: corpora are read as streams of rows, twice: `KeyIndex.build` keeps 8
bytes of hash per distinct text (and its labels and corpora), then `KeyIndex.assign` yields each
kept row with its split. No list of texts is ever held. Its own module because the rule is one
fact the data, the card and the tests all read, apart from how the rows were read.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, cast

from training.corpora import Row

SplitName = Literal["train", "validation", "test"]
SPLIT_SALT = b"sentiment-split-v1\0"
TRAIN_FRACTION = 0.70
VALIDATION_FRACTION = 0.15
_NON_ALPHANUMERIC = re.compile(r"[^0-9a-z]+")


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
