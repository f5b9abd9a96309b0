"""bench.versions times real shipped versions side by side and reports each round's ratio."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.versions import compare
from tests.paths import REPO_ROOT, SHIPPED_MODEL_BASE

TEXTS = ["A wonderful film, I loved it.", "Terrible acting and a dull plot."] * 4


def test_compare_gives_every_version_one_figure_per_round() -> None:
    """Each version as the service loads it (inline) and, for comparison, eagerly."""
    versions = [(SHIPPED_MODEL_BASE / "1", False), (SHIPPED_MODEL_BASE / "3", True)]
    figures = compare(versions, TEXTS, batch_size=4, rounds=2, runs=1, run_seconds=0.05)
    assert list(figures) == versions
    assert all(len(values) == 2 and min(values) > 0 for values in figures.values())


def test_main_prints_medians_and_per_round_ratios() -> None:
    """Run as a process: `main` sets TensorFlow's threads, which only a fresh process allows."""
    archive = REPO_ROOT.parent / "shared" / "datasets" / "aclImdb_labelled.tar.gz"
    if not archive.exists():
        pytest.skip(f"the IMDB archive is not at {archive}")
    version, other = str(SHIPPED_MODEL_BASE / "1"), str(SHIPPED_MODEL_BASE / "3")
    options = ["--texts", "8", "--batch-size", "4", "--rounds", "1", "--runs", "1", "--eager"]
    command = [sys.executable, "-m", "bench.versions", version, other, *options]
    completed = subprocess.run(
        [*command, "--run-seconds", "0.05"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = completed.stderr.splitlines()
    assert any("per-round ratio" in line for line in lines)
    assert f"| {version} | 1.000 | 1.000 |" in lines, "the first version's ratio is 1"
    assert any(line.startswith(f"| {other} (eager) |") for line in lines)
