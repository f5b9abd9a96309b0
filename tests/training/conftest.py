"""Training test fixtures: tiny data files of every supported kind, and the real IMDB archive."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT, SHIPPED_MODEL_BASE

IMDB_ARCHIVE = REPO_ROOT.parent / "shared" / "datasets" / "aclImdb_labelled.tar.gz"
__all__ = ["IMDB_ARCHIVE", "SHIPPED_MODEL_BASE"]

POSITIVE_TEXTS = [
    "A wonderful, moving film.",
    "Great acting<br />and a great story!",
    "I loved it.",
]
NEGATIVE_TEXTS = [
    "Dull and far too long.",
    "The worst film I have seen.",
    "Awful script, bad acting.",
]


def write_imdb_archive(path: Path, extra_members: dict[str, str] | None = None) -> Path:
    """An archive in the official aclImdb layout (including an `unsup/` review to be skipped)."""
    members = {
        f"aclImdb/{split}/{polarity}/{i}_{7 if polarity == 'pos' else 2}.txt": text
        for split in ("train", "test")
        for polarity, texts in (("pos", POSITIVE_TEXTS), ("neg", NEGATIVE_TEXTS))
        for i, text in enumerate(texts)
    }
    members["aclImdb/train/unsup/0_0.txt"] = "unlabelled review that must be ignored"
    members["aclImdb/README"] = "readme"
    members.update(extra_members or {})
    with tarfile.open(path, "w:gz") as archive:
        for name, text in members.items():
            payload = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return path


@pytest.fixture
def imdb_archive(tmp_path: Path) -> Path:
    return write_imdb_archive(tmp_path / "aclImdb_small.tar.gz")


@pytest.fixture(scope="session")
def real_imdb_archive() -> Path:
    if not IMDB_ARCHIVE.exists():
        pytest.skip(f"the IMDB archive is not at {IMDB_ARCHIVE} (CI has it beside the repo)")
    return IMDB_ARCHIVE


def write_jsonl(path: Path, rows: list[tuple[str, int]], domain: str | None = None) -> Path:
    """A corpus file of (text, label) rows, as the datasets directory holds them."""
    import json

    lines = [
        json.dumps({"text": text, "label": label} | ({"domain": domain} if domain else {}))
        for text, label in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_imdb_archive(real_imdb_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real IMDB reviews in the official layout, 150 per split and label: quick real runs."""
    per_folder = 150
    taken: dict[str, int] = {}
    path = tmp_path_factory.mktemp("imdb") / "aclImdb_small.tar.gz"
    with tarfile.open(real_imdb_archive) as source, tarfile.open(path, "w:gz") as target:
        for member in source:
            folder = member.name.rsplit("/", 1)[0]
            if not member.isfile() or not folder.endswith(("/pos", "/neg")):
                continue
            if taken.get(folder, 0) < per_folder:
                taken[folder] = taken.get(folder, 0) + 1
                target.addfile(member, source.extractfile(member))
    return path
