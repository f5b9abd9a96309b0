"""Data: every row of the mix with its split, and the short snippets cut from long reviews.

`prepare` streams the mix's sources once through the split rule (`training.corpora`: leak-proof
splits by a hash of the normalised text, IMDB's test split untouched), cuts the snippets, and
writes each kept row to a local rows file; every later pass (vocabulary, unit counts, baselines,
references) reads that file back as a stream. So no pass holds the texts in memory, every pass
sees exactly the same rows and snippets, and the sources (an 80 MB archive, gzip files, a
download) are parsed and hashed once.

Row kinds:

* ``row``: a text of a corpus;
* ``snippet``: a sentence cut from a long training or validation review (IMDB, Yelp, Blitzer),
  labelled with its review: users type "I loved it!", not 230-word reviews. The held-out model
  trains on the training reviews' snippets, the refit on the validation reviews' as well;
* ``calibration_snippet``: one sentence from each long validation review, where calibration is
  hardest; only the calibration is fitted on them.

`load` reads one source into memory (a quick look, tests); training never does.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from training import corpora, mixing
from training.corpora import IMDB_URL, DataError, Row, download, file_sha256
from training.mixing import Mix, Source
from training.splits import DuplicateReport, KeyIndex, sample_position

__all__ = ["IMDB_URL", "DataError", "download", "file_sha256"]

logger = logging.getLogger(__name__)

NEGATIVE, POSITIVE = 0, 1
ROW, SNIPPET, CALIBRATION_SNIPPET = "row", "snippet", "calibration_snippet"
KINDS = (ROW, SNIPPET, CALIBRATION_SNIPPET)
CALIBRATION_SNIPPETS_PER_REVIEW = 1.0
_SENTENCE_END = re.compile(r"(?:<br\s*/?>)+|(?<=[.!?;])\s+")


class RunRow(NamedTuple):
    text: str
    label: int
    corpus: str
    domain: str
    split: str
    kind: str


@dataclass(frozen=True)
class SourceRecord:
    """What the card says about one corpus of the mix."""

    name: str
    origin: str
    sha256: str
    description: dict[str, object]


@dataclass
class RunData:
    """The run's rows (a local file read back in passes) and what was counted writing it."""

    path: Path
    mix: Mix
    sources: list[SourceRecord]
    report: DuplicateReport
    limit: int | None = None
    # Rows per (corpus, domain, split, kind, label).
    counts: Counter[tuple[str, str, str, str, int]] = field(default_factory=Counter)

    def rows(self, splits: Collection[str], kinds: Collection[str] = (ROW,)) -> Iterator[RunRow]:
        """The rows of `splits` and `kinds`, in the file's (the sources') order."""
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                row = RunRow(*json.loads(line))
                if row.split in splits and row.kind in kinds:
                    yield row

    def size(self, splits: Collection[str], kinds: Collection[str] = (ROW,)) -> int:
        return sum(n for (_, _, s, k, _), n in self.counts.items() if s in splits and k in kinds)

    def label_counts(self, splits: Collection[str]) -> Counter[tuple[str, int]]:
        """Rows (not snippets) per (corpus, label) in `splits`: what the mix weights come from."""
        counted: Counter[tuple[str, int]] = Counter()
        for (corpus, _, split, kind, label), n in self.counts.items():
            if split in splits and kind == ROW:
                counted[(corpus, label)] += n
        return counted

    def table(self) -> dict[str, dict[str, dict[str, int]]]:
        """Rows per corpus and per domain, by split (snippets apart): the card's data table."""
        table: dict[str, dict[str, dict[str, int]]] = {"corpora": {}, "domains": {}}
        for (corpus, domain, split, kind, _), n in sorted(self.counts.items()):
            column = {ROW: split, SNIPPET: f"snippets_from_{split}"}.get(kind, f"{kind}s")
            for group, name in (("corpora", corpus), ("domains", domain)):
                cells = table[group].setdefault(name, {})
                cells[column] = cells.get(column, 0) + n
        return table


def snippets_of(text: str, per_review: float, rng: np.random.Generator) -> list[str]:
    """`per_review` random sentences of 2 to 25 words (fractional: one from some reviews only)."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if 2 <= len(s.split()) <= 25]
    whole = int(per_review)
    count = whole + int(rng.random() < per_review - whole)
    if not sentences or not count:
        return []
    picked = rng.choice(len(sentences), size=min(count, len(sentences)), replace=False)
    return [sentences[i] for i in picked]


def prepare(
    mix: Mix,
    sources: list[Source],
    work_dir: Path,
    snippets_per_review: float,
    seed: int,
    limit: int | None = None,
) -> RunData:
    """Split every row of `sources`, cut the snippets, and write the rows file in `work_dir`.

    `limit`: keep about that many rows of each corpus (all splits together), chosen by the
    text's hash, for quick runs.
    """
    report = DuplicateReport()

    def rows() -> Iterator[Row]:
        for source in sources:
            yield from source.rows()

    index = KeyIndex.build(rows(), report)
    records = [
        SourceRecord(s.entry.name, s.origin, file_sha256(s.path), s.entry.describe())
        for s in sources
    ]
    data = RunData(work_dir / "rows.jsonl", mix, records, report, limit)
    cuts = {s.entry.name for s in sources if s.entry.cuts_snippets}
    training_rng = np.random.default_rng(seed)
    calibration_rng = np.random.default_rng(seed + 1)
    with data.path.open("w", encoding="utf-8") as out:
        for row, split, key in index.assign(rows(), report):
            total = report.rows_by_corpus[row.corpus]
            if limit is not None and sample_position(key) >= limit / total:
                continue
            written = [(row.text, ROW)]
            if row.corpus in cuts and split != "test":
                written += [
                    (s, SNIPPET) for s in snippets_of(row.text, snippets_per_review, training_rng)
                ]
                if split == "validation":
                    written += [
                        (s, CALIBRATION_SNIPPET)
                        for s in snippets_of(
                            row.text, CALIBRATION_SNIPPETS_PER_REVIEW, calibration_rng
                        )
                    ]
            for text, kind in written:
                out.write(json.dumps([text, row.label, row.corpus, row.domain, split, kind]) + "\n")
                data.counts[(row.corpus, row.domain, split, kind, row.label)] += 1
    _check(data, sources)
    logger.info(
        "Data: %d rows of %d corpora → train %d, validation %d, test %d (+ %d training and %d "
        "calibration snippets); %d duplicates or conflicts dropped",
        report.rows,
        len(sources),
        data.size({"train"}),
        data.size({"validation"}),
        data.size({"test"}),
        data.size({"train", "validation"}, {SNIPPET}),
        data.size({"validation"}, {CALIBRATION_SNIPPET}),
        sum(report.dropped.values()),
    )
    return data


def _check(data: RunData, sources: list[Source]) -> None:
    """Fail before training on data that cannot make a model, naming the source at fault."""
    for source in sources:
        if data.report.rows_by_corpus[source.entry.name] == 0:
            raise DataError(f"{source.origin}: empty file (no rows)")
    train = data.label_counts({"train"})
    labels = {label for (_, label), n in train.items() if n}
    if len(labels) < 2:
        only = "positive" if POSITIVE in labels else "negative"
        raise DataError(
            f"{data.mix.source}: the training split has a single class ({only}); both labels "
            "are needed"
        )
    for split in ("validation", "test"):
        if data.size({split}) == 0:
            raise DataError(
                f"{data.mix.source}: no {split} rows after the split rule ({data.report.rows} rows "
                "read): too little data to choose settings and report on"
            )


# --- one source in memory ------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Texts and their 0/1 labels, index-aligned."""

    texts: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def __add__(self, other: Split) -> Split:
        return Split(self.texts + other.texts, np.concatenate([self.labels, other.labels]))

    def sample(self, limit: int | None, seed: int) -> Split:
        """A seeded random subset for quick looks (tests, demos); None keeps everything."""
        if limit is None or limit >= len(self.texts):
            return self
        keep = np.sort(np.random.default_rng(seed).permutation(len(self.texts))[:limit])
        return Split([self.texts[i] for i in keep], self.labels[keep])


@dataclass(frozen=True)
class LabelledData:
    """One source read into memory: IMDB's official splits, or a file with `test_fraction` of
    its rows held out (seeded)."""

    train: Split
    test: Split
    source: str
    sha256: str
    domain: str


def load(
    source: str,
    cache_dir: Path,
    test_fraction: float = 0.2,
    seed: int = 42,
    domain: str | None = None,
) -> LabelledData:
    """Read `source` (URL, aclImdb archive or directory, CSV or JSON Lines file) into memory."""
    mix = mixing.mix_of(source, domain)
    (located,) = mixing.locate(mix, ".", cache_dir)
    rows = list(located.rows())
    if corpora.is_imdb_layout(located.path):
        train, test = (
            _split([r for r in rows if r.official == name]) for name in ("train", "test")
        )
        for name, split in (("train", train), ("test", test)):
            if not len(split):
                raise DataError(
                    f"{located.path}: no reviews under {name}/pos or {name}/neg (aclImdb layout)"
                )
            _check_two_classes(located.path, split.labels, f"the {name} split")
    else:
        if not rows:
            raise DataError(f"{located.path}: empty file (no rows)")
        everything = _split(rows)
        _check_two_classes(located.path, everything.labels, "the file")
        order = np.random.default_rng(seed).permutation(len(rows))
        cut = len(order) - round(len(order) * test_fraction)
        train, test = (_split([rows[i] for i in part]) for part in (order[:cut], order[cut:]))
    return LabelledData(train, test, source, file_sha256(located.path), rows[0].domain)


def _split(rows: Iterable[Row]) -> Split:
    rows = list(rows)
    return Split([r.text for r in rows], np.array([r.label for r in rows], dtype=np.float32))


def _check_two_classes(path: Path, labels: np.ndarray, where: str) -> None:
    if len(np.unique(labels)) < 2:
        only = "positive" if labels[0] == POSITIVE else "negative"
        raise DataError(f"{path}: {where} has a single class ({only}); both labels are needed")
