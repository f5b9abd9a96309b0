"""Real review texts for the load: the benchmark must send what users send.

Latency of a text model depends on the text (tokenization is most of the work at large
batches), so a constant toy sentence would flatter the service. The texts come from the IMDB
archive the project trains on, half positive and half negative, read straight from the
`.tar.gz` without extracting it.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

DEFAULT_DATA = Path("../shared/datasets/aclImdb_labelled.tar.gz")


def load_review_texts(archive: Path, count: int) -> list[str]:
    """Up to `count` test-split reviews, alternating negative and positive, in archive order."""
    if count < 1:
        raise ValueError("count must be at least 1")
    wanted_per_class = (count + 1) // 2
    by_class: dict[str, list[str]] = {"neg": [], "pos": []}
    with tarfile.open(archive, mode="r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".txt"):
                continue
            parts = member.name.split("/")
            if len(parts) < 4 or parts[-3] != "test" or parts[-2] not in by_class:
                continue
            bucket = by_class[parts[-2]]
            if len(bucket) >= wanted_per_class:
                if all(len(texts) >= wanted_per_class for texts in by_class.values()):
                    break
                continue
            extracted = tar.extractfile(member)
            if extracted is None:
                continue
            text = extracted.read().decode("utf-8", errors="replace").strip()
            if text:
                bucket.append(text)
    mixed = [text for pair in zip(by_class["neg"], by_class["pos"], strict=False) for text in pair]
    if not mixed:
        raise ValueError(f"no test reviews found in {archive}")
    return mixed[:count]
