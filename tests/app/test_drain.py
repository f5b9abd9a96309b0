"""SIGTERM under steady REST and gRPC load loses nothing (tests/app/drain_load.py).

Five times in a row, a fresh ``python -m app`` with the shipped worker count (each worker
drains its HTTP and gRPC listeners, coordinated with the others), 32 keep-alive REST clients
that reconnect after ``Connection: close`` and 16 gRPC channels calling ``ModelInfer`` back to
back: every request is answered or cleanly refused (a 503, a refused connection, gRPC
UNAVAILABLE), none is reset, cancelled, times out or disappears, and the server exits 0.
Bounded: each client stops at its first refusal after the signal, at most 50,000 requests or
60 s.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.settings import Settings
from tests.app.drain_load import run_once

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RUNS = 5
REST_CLIENTS = 32
GRPC_CLIENTS = 16


@pytest.fixture
def model_copy(tmp_path: Path, source_version_dir: Path) -> Path:
    base = tmp_path / "sentiment"
    base.mkdir()
    shutil.copytree(source_version_dir, base / "1")
    return base


def test_sigterm_under_rest_and_grpc_load_loses_nothing(model_copy: Path) -> None:
    workers = Settings.model_fields["workers"].default  # what ships (deploy/ keeps it)
    for run in range(RUNS):
        outcomes = run_once(
            model_copy, workers=None, rest_clients=REST_CLIENTS, grpc_clients=GRPC_CLIENTS
        )
        summary = outcomes.summary()
        assert outcomes.lost == 0 and not outcomes.lost_details, (run, summary)
        assert outcomes.rest["answered"] > 0 and outcomes.grpc["answered"] > 0, (run, summary)
        # Every client ended on a clean refusal once nothing listened any more.
        assert outcomes.rest["refused"] >= REST_CLIENTS, (run, summary)
        assert outcomes.grpc["refused"] >= GRPC_CLIENTS, (run, summary)
        # Every worker drained both listeners (from their logs).
        assert len(outcomes.queued_at_close) == workers, (run, summary)
        assert len(outcomes.grpc_stops) == workers, (run, summary)
