"""Peer mode runs a real peer beside the real service and reports both.

Only the naive FastAPI peer runs here: BentoML and LitServe live in `.venv-peers`, never in the
service's venv. The peer is started exactly as the benchmark starts every peer (its own
process, on 127.0.0.1, the model directory on its command line) and measured with a bounded
load beside a one-worker service; the figures themselves are not checked.
"""

from __future__ import annotations

import importlib.metadata
import io
import sys
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.inprocess import newest_version_dir
from bench.measure import Bench
from bench.options import parse_options
from bench.peers import PEERS, peer_names
from bench.run import (
    PEER_AGREEMENT,
    PEER_CONCURRENCY,
    check_peers,
    choose_client,
    measure_peers,
)
from bench.servers import SERVICE, running_server
from tests.paths import REPO_ROOT, SHIPPED_MODEL_BASE

REVIEWS = {
    "neg": ["A dull, lifeless film.", "Terrible acting and a plot that goes nowhere."],
    "pos": ["A wonderful film, I loved it.", "Sharp writing and warm performances."],
}


def _archive(tmp_path: Path) -> Path:
    """A tiny archive in the IMDB layout the benchmark reads its texts from."""
    path = tmp_path / "reviews.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for label, texts in REVIEWS.items():
            for index, text in enumerate(texts):
                data = text.encode()
                member = tarfile.TarInfo(f"aclImdb/test/{label}/{index}_5.txt")
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
    return path


def test_peer_names_default_to_every_peer_and_refuse_unknown_ones() -> None:
    assert parse_options(["--peers"]).peers == list(PEERS) == ["naive", "bentoml", "litserve"]
    assert parse_options(["--peers", "naive"]).peers == ["naive"]
    assert parse_options([]).peers == []
    with pytest.raises(ValueError, match="unknown peer"):
        peer_names("naive,tfserving")
    with pytest.raises(SystemExit):
        parse_options(["--peers", "tfserving"])
    # Relative to where the run starts, and a venv's python is not resolved out of its venv.
    relative = parse_options(["--peers-python", "venv/bin/python"]).peers_python
    assert relative == str(Path.cwd() / "venv" / "bin" / "python")


def test_compare_version_defaults_to_the_issue_baseline_and_can_be_skipped() -> None:
    assert parse_options([]).compare_version == SHIPPED_MODEL_BASE / "7"
    assert parse_options(["--compare-version", "none"]).compare_version is None
    older = str(SHIPPED_MODEL_BASE / "1")
    assert parse_options(["--compare-version", older]).compare_version == Path(older)


def test_a_peer_missing_from_the_peers_interpreter_stops_the_run_before_it_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """BentoML is not in the service's venv: the run refuses at once, pointing at the fix."""
    arguments = ["--data", str(_archive(tmp_path)), "--peers", "naive,bentoml"]
    assert main([*arguments, "--peers-python", sys.executable]) == 2
    assert "bentoml not installed" in caplog.text and "make bench-peers" in caplog.text


@pytest.mark.e2e
def test_the_naive_peer_runs_beside_the_service_and_is_measured(tmp_path: Path) -> None:
    options = parse_options(
        [
            "--data",
            str(_archive(tmp_path)),
            "--model-base",
            str(SHIPPED_MODEL_BASE),
            "--texts",
            "4",
            "--rounds",
            "1",
            "--duration",
            "0.3",
            "--peers",
            "naive",
            "--peers-python",
            sys.executable,
            "--peer-warmup",
            "2",
        ]
    )
    version_dir = newest_version_dir(SHIPPED_MODEL_BASE)  # the version the service serves
    with ProcessPoolExecutor(max_workers=1) as client_pool:
        bench = Bench(options, client_pool, choose_client(options))
        service_env = bench.service_env(SENTIMENT_WORKERS="1")
        with running_server("service", SERVICE, service_env, REPO_ROOT, "/readyz") as service:
            results = measure_peers(bench, service, version_dir, 1, check_peers(options))

    assert list(results.peers) == ["naive"]
    assert results.largest_difference["naive"] <= PEER_AGREEMENT
    assert results.versions["fastapi"] == importlib.metadata.version("fastapi")
    assert results.versions["bentoml"] == "not installed"
    for figures in (results.service, results.peers["naive"]):
        assert sorted(figures) == sorted(PEER_CONCURRENCY)
        for measured in figures.values():
            assert measured.load.completed > 0
            assert set(measured.load.status_counts) == {200}
            assert measured.load.timeouts == measured.load.errors == 0
            assert measured.requests_per_s > 0 and measured.p50_ms > 0
