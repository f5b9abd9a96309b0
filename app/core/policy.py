"""Which versions are served, and what the version labels name: the two version settings.

``SENTIMENT_MODEL_VERSION_POLICY`` is TF Serving's ``model_version_policy`` (and Triton's
``version_policy``) written as one string:

* ``latest``: the highest version that loads and verifies (one version, the default);
* ``latest:N``: the N highest versions that load and verify;
* ``all``: every version that loads and verifies;
* ``specific:6,7``: exactly these versions (those that exist and load).

A version that fails to load is skipped, so ``latest:N`` reaches down to the next one.

``SENTIMENT_MODEL_VERSION_LABELS`` is TF Serving's ``version_labels``: ``stable=6,canary=7``.
A label names one version. Label names start with a letter, so a label can never be mistaken
for a version number. ``stable`` is the version unversioned requests go to; ``canary`` is where
``SENTIMENT_CANARY_PERCENT`` sends its share of them.

Both parse from their setting's text and print back to it (``str``), so the configuration
table and config files show them as an operator writes them. Nothing here does I/O: the
registry applies the policy to the directory, and checks the labels against what loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

STABLE_LABEL = "stable"
CANARY_LABEL = "canary"
POLICY_FORMS = "latest, latest:N, all or specific:V1,V2,..."
LABEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_VERSION_TEXT = re.compile(r"[0-9]{1,18}")

PolicyKind = Literal["latest", "all", "specific"]


def _version(text: str, what: str) -> int:
    text = text.strip()
    if not _VERSION_TEXT.fullmatch(text):
        raise ValueError(f"{what}: {text!r} is not a version number (a non-negative integer)")
    return int(text)


@dataclass(frozen=True, slots=True)
class VersionPolicy:
    """The versions to serve: the ``latest`` ``count``, ``all``, or the ``specific`` ones."""

    kind: PolicyKind = "latest"
    count: int = 1
    versions: tuple[int, ...] = ()

    @classmethod
    def parse(cls, value: object) -> VersionPolicy:
        """The policy ``value`` (a setting's text) names; ValueError saying the valid forms."""
        if isinstance(value, VersionPolicy):
            return value
        if not isinstance(value, str):
            raise ValueError(f"a version policy is text: {POLICY_FORMS}")
        text = value.strip().lower()
        kind, colon, rest = text.partition(":")
        if kind == "all" and not colon:
            return cls("all")
        if kind == "latest" and not colon:
            return cls("latest")
        if kind == "latest" and rest.strip().isdigit() and int(rest) >= 1:
            return cls("latest", count=int(rest))
        if kind == "specific" and rest.strip():
            parts = rest.split(",")
            versions = sorted({_version(part, "specific") for part in parts})
            return cls("specific", versions=tuple(versions))
        raise ValueError(f"{value!r} is not a version policy: use {POLICY_FORMS}")

    def __str__(self) -> str:
        if self.kind == "latest":
            return "latest" if self.count == 1 else f"latest:{self.count}"
        if self.kind == "specific":
            return "specific:" + ",".join(str(version) for version in self.versions)
        return "all"

    @property
    def limit(self) -> int | None:
        """How many versions to serve at most (None: every candidate that loads)."""
        return self.count if self.kind == "latest" else None

    def candidates(self, on_disk: Sequence[int]) -> list[int]:
        """The versions on disk this policy may serve, in the order they are tried (highest
        first); ``latest:N`` serves the first N of them that load."""
        if self.kind == "specific":
            return sorted(set(on_disk) & set(self.versions), reverse=True)
        return sorted(on_disk, reverse=True)

    def expected(self, on_disk: Sequence[int]) -> list[int]:
        """The versions it serves when all of them load (highest first)."""
        found = self.candidates(on_disk)
        return found if self.limit is None else found[: self.limit]


@dataclass(frozen=True, slots=True)
class VersionLabels:
    """Label names and the version each names, in the order they were written."""

    pairs: tuple[tuple[str, int], ...] = ()

    @classmethod
    def parse(cls, value: object) -> VersionLabels:
        """``stable=6,canary=7`` (empty: no labels); ValueError saying what is wrong."""
        if isinstance(value, VersionLabels):
            return value
        if not isinstance(value, str):
            raise ValueError("version labels are text such as stable=6,canary=7")
        pairs: dict[str, int] = {}
        for item in value.split(","):
            if not item.strip():
                continue
            name, equals, version = item.partition("=")
            name = name.strip()
            if not equals:
                raise ValueError(f"{item.strip()!r} is not label=version (e.g. stable=6,canary=7)")
            if not LABEL_NAME.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not a label name: a letter, then up to 63 letters, digits, "
                    "'_', '.' or '-'"
                )
            if name in pairs:
                raise ValueError(f"label {name!r} is given twice")
            pairs[name] = _version(version, f"label {name}")
        return cls(tuple(pairs.items()))

    def __str__(self) -> str:
        return ",".join(f"{name}={version}" for name, version in self.pairs)

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self.pairs)

    def get(self, name: str) -> int | None:
        """The version ``name`` labels, or None."""
        for label, version in self.pairs:
            if label == name:
                return version
        return None

    @property
    def versions(self) -> set[int]:
        """Every version some label names."""
        return {version for _, version in self.pairs}
