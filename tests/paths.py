"""Where the repository is, for every test suite: the one definition of ``REPO_ROOT``."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODEL_BASE = REPO_ROOT / "model" / "sentiment"
