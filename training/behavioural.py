"""The behavioural sets: short hand-written texts the card reports per set and per kind.

They ship with the package (`training/behaviour/*.jsonl`, package data), so a card built in the
training image has the same behavioural section as one built from a checkout. Each file is one
set, written at one time by one author, and reported on its own: a set written by the people
who tuned the model measures what they thought of, so a newer set, written before the model
scored it, must not be averaged away into it.

One JSON object per line::

    {"text": ..., "label": 0 | 1, "kind": KIND,
     "subkind": "negated_negative" | "negated_positive",   (optional, negation only)
     "domain": "movie" | "product" | ...}                  (optional: what the text is about)

They are tests, never training or tuning data: a run reads them up front only to fail early on a
malformed file, and scores them once the model is final.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.metrics import DECISION_THRESHOLD

BEHAVIOUR_DIR = Path(__file__).with_name("behaviour")
KINDS = ("plain", "negation", "contrast", "intensity", "informal", "domain")
SUBKINDS = ("negated_negative", "negated_positive")
DOMAINS = ("movie", "product", "service", "app", "food", "travel", "social")
# What a negated negative ("zero problems so far") and a negated positive ("not worth it") mean.
SUBKIND_LABELS = {"negated_negative": 1, "negated_positive": 0}
_FIELDS = {"text", "label", "kind", "subkind", "domain"}


class BehaviouralSetError(ValueError):
    """A behavioural set breaks the schema; the message names the file and line."""


@dataclass(frozen=True)
class BehaviouralText:
    text: str
    label: int
    kind: str
    subkind: str | None = None
    domain: str | None = None


@dataclass(frozen=True)
class BehaviouralSet:
    name: str  # the file's stem, e.g. written_2026_11
    texts: list[BehaviouralText]

    @property
    def labels(self) -> np.ndarray:
        return np.array([row.label for row in self.texts], dtype=np.float64)


def set_paths(location: Path) -> list[Path]:
    """The sets at `location`: one JSON Lines file, or every `*.jsonl` in a directory, by name.

    A location with no set is an error, not an empty report: a card without its behavioural
    section must not pass for one that has it (the training image once lacked the files).
    """
    paths = sorted(location.glob("*.jsonl")) if location.is_dir() else [location]
    if not paths or not paths[0].is_file():
        raise BehaviouralSetError(f"{location}: no behavioural set (*.jsonl) there")
    return paths


def load_sets(location: Path = BEHAVIOUR_DIR) -> list[BehaviouralSet]:
    return [load_set(path) for path in set_paths(location)]


def load_set(path: Path) -> BehaviouralSet:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}: line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BehaviouralSetError(f"{where}: invalid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise BehaviouralSetError(f"{where}: expected a JSON object")
        rows.append(_parse(row, where))
    if not rows:
        raise BehaviouralSetError(f"{path.name}: no texts")
    return BehaviouralSet(path.stem, rows)


def _parse(row: dict[str, Any], where: str) -> BehaviouralText:
    unknown = set(row) - _FIELDS
    if unknown:
        raise BehaviouralSetError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    text, label, kind = row.get("text"), row.get("label"), row.get("kind")
    subkind, domain = row.get("subkind"), row.get("domain")
    if not isinstance(text, str) or not text.strip():
        raise BehaviouralSetError(f"{where}: empty text")
    if label not in (0, 1):
        raise BehaviouralSetError(f"{where}: label must be 0 or 1")
    if kind not in KINDS:
        raise BehaviouralSetError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if subkind is not None and (kind != "negation" or subkind not in SUBKINDS):
        raise BehaviouralSetError(f"{where}: subkind {subkind!r} needs kind negation")
    if subkind is not None and SUBKIND_LABELS[subkind] != label:
        raise BehaviouralSetError(f"{where}: a {subkind} has label {SUBKIND_LABELS[subkind]}")
    if domain is not None and domain not in DOMAINS:
        raise BehaviouralSetError(f"{where}: domain {domain!r} is not one of {', '.join(DOMAINS)}")
    if kind == "domain" and domain is None:
        raise BehaviouralSetError(f"{where}: kind domain needs a domain")
    return BehaviouralText(text, int(label), kind, subkind, domain)


def _accuracy(correct: np.ndarray) -> dict[str, Any]:
    return {"accuracy": round(float(correct.mean()), 4), "texts": int(correct.size)}


def _grouped(
    rows: Sequence[BehaviouralText],
    correct: np.ndarray,
    key: Callable[[BehaviouralText], str | None],
) -> dict[str, dict[str, Any]]:
    groups = sorted({group for group in map(key, rows) if group is not None})
    return {
        group: _accuracy(correct[np.array([key(row) == group for row in rows])]) for group in groups
    }


def accuracy_report(rows: Sequence[BehaviouralText], probabilities: np.ndarray) -> dict[str, Any]:
    """Accuracy overall, per kind, per negation subkind and per domain (where given)."""
    labels = np.array([row.label for row in rows])
    correct = (np.asarray(probabilities) >= DECISION_THRESHOLD) == (labels == 1)
    return {
        **_accuracy(correct),
        "by_kind": _grouped(rows, correct, lambda row: row.kind),
        "by_subkind": _grouped(rows, correct, lambda row: row.subkind),
        "by_domain": _grouped(rows, correct, lambda row: row.domain),
    }


def report(
    sets: Iterable[BehaviouralSet], score: Callable[[list[str]], np.ndarray]
) -> dict[str, Any]:
    """The card's behavioural section: every set on its own, and all of them pooled.

    `score` gives P(positive) for a list of texts (the reloaded export, as the service serves).
    """
    sets = list(sets)
    pooled: list[BehaviouralText] = []
    pooled_probabilities = []
    by_set = {}
    for behavioural_set in sets:
        probabilities = score([row.text for row in behavioural_set.texts])
        by_set[behavioural_set.name] = {
            "source": f"{behavioural_set.name}.jsonl",
            **accuracy_report(behavioural_set.texts, probabilities),
        }
        pooled += behavioural_set.texts
        pooled_probabilities.append(probabilities)
    return {
        **accuracy_report(pooled, np.concatenate(pooled_probabilities)),
        "sets": by_set,
    }
