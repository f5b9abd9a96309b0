"""The mix: which corpora a run trains on, with which weights, and where their files are.

A `Mix` names the corpora and their weight multipliers (one value, or several for validation to
choose from); it comes from a mix file (`load_mix`, the shipped ones in `training/mixes/`) or
from one user's file (`mix_of`). `row_weights` turns row counts into per-(corpus, label) sample
weights: the same total per corpus, labels balanced inside each corpus, times the corpus's
multiplier. `locate` finds (or downloads) every entry's file before anything is read. Its own
module because choosing and weighing the corpora is a recipe, apart from what each corpus is
and how its rows are read (`training.corpora`).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from training.corpora import (
    ARCHIVE_SUFFIXES,
    BY_NAME,
    IMDB,
    IMDB_URL,
    Corpus,
    DataError,
    Row,
    download,
    is_imdb_layout,
    is_url,
    read_source,
)

MIXES_DIR = Path(__file__).with_name("mixes")


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
    if is_imdb_layout(Path(location)) or (is_url(location) and name.endswith(ARCHIVE_SUFFIXES)):
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
