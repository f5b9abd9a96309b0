"""Which shipped versions the explain, input-metrics and playground tests serve.

The suite serves the shipped model directory and nothing else: the newest version whose card
lists the ``explain`` signature (v3 on), and for the 501 path a version exported without it
(v1, v2), which the tests copy into a tmp base directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contract import EXPLAIN_SIGNATURE_NAME, ModelCard, version_dirs
from tests.paths import SHIPPED_MODEL_BASE


def _has_explain(version_dir: Path) -> bool:
    try:
        return EXPLAIN_SIGNATURE_NAME in ModelCard.read(version_dir).signatures
    except (OSError, ValueError):
        return False


def explain_version_dir() -> Path:
    """The newest shipped version with the explain signature (v3 on; fails if none)."""
    with_explain = [path for _, path in version_dirs(SHIPPED_MODEL_BASE) if _has_explain(path)]
    if not with_explain:
        pytest.fail(f"no version under {SHIPPED_MODEL_BASE} has the explain signature")
    return with_explain[-1]


def legacy_version_dir() -> Path:
    """A shipped version exported without the explain signature (1 or 2)."""
    without = [path for _, path in version_dirs(SHIPPED_MODEL_BASE) if not _has_explain(path)]
    if not without:
        pytest.fail(f"no version under {SHIPPED_MODEL_BASE} lacks the explain signature")
    return without[-1]
