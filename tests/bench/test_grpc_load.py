"""bench.grpc measures gRPC beside REST on the real shipped model and answers every request.

The figures themselves are not checked (a benchmark, not a timed test): a short real run must
print a row per protocol and concurrency with requests answered and no errors, the ratios, and
say how the clients were run; the gRPC client splits its load as asked and counts failures.
"""

from __future__ import annotations

import re

import pytest

from bench.grpc import main
from bench.grpc_load import GrpcLoadSpec, run_grpc_load, shares
from bench.servers import free_port
from tests.paths import REPO_ROOT, SHIPPED_MODEL_BASE

ARCHIVE = REPO_ROOT.parent / "shared" / "datasets" / "aclImdb_labelled.tar.gz"


def test_the_load_is_split_evenly_over_the_client_processes() -> None:
    spec = GrpcLoadSpec("x:1", "/a/B", [b""], concurrency=65, max_requests=1001, duration_s=1.0)
    parts = shares(GrpcLoadSpec(**{**spec.__dict__, "processes": 2}))
    assert [part.concurrency for part in parts] == [33, 32]
    assert [part.max_requests for part in parts] == [501, 500]
    assert len(shares(GrpcLoadSpec(**{**spec.__dict__, "concurrency": 1, "processes": 4}))) == 1
    assert spec.channels(64) == 4 and spec.channels(1) == 1 and spec.channels(17) == 2


def test_a_port_nobody_serves_fails_the_run_before_it_starts() -> None:
    spec = GrpcLoadSpec(
        f"127.0.0.1:{free_port()}",
        "/inference.GRPCInferenceService/ModelInfer",
        [b""],
        concurrency=1,
        max_requests=3,
        duration_s=2.0,
        request_timeout_s=1.0,
        connect_timeout_s=1.0,
    )
    with pytest.raises(RuntimeError, match="failed to start"):
        run_grpc_load(spec)


@pytest.mark.e2e
def test_grpc_beside_rest_against_the_shipped_model(capsys: pytest.CaptureFixture[str]) -> None:
    if not ARCHIVE.exists():
        pytest.skip(f"the IMDB archive is not at {ARCHIVE}")
    arguments = [
        "--model-base",
        str(SHIPPED_MODEL_BASE),
        "--reviews",
        "16",
        "--concurrency",
        "1,8",
        "--rounds",
        "2",
        "--seconds",
        "1",
        "--warmup-seconds",
        "0.5",
        "--requests",
        "400",
        "--calls-per-channel",
        "4",
        "--service-env",
        "SENTIMENT_WORKERS=1",
    ]
    assert main(arguments) == 0
    report = capsys.readouterr().out
    assert "## gRPC beside REST" in report
    assert "REST client:" in report and "gRPC client: bench.grpc_load" in report
    for protocol in ("rest", "grpc"):
        for concurrency in (1, 8):
            row = re.search(
                rf"^\| {protocol} \| {concurrency} \| (\d+) \| ([0-9.]+) \| ([0-9.]+) "
                r"\| ([0-9.]+) \| (\d+) \| ([0-9.]+) \|",
                report,
                re.MULTILINE,
            )
            assert row is not None, (protocol, concurrency, report)
            requests, rate, p50, p99, errors, _client = row.groups()
            assert int(requests) > 0 and float(rate) > 0, report
            assert 0 < float(p50) <= float(p99), report
            assert int(errors) == 0, report  # every request answered with success
    for concurrency in (1, 8):
        assert re.search(rf"^\| {concurrency} \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|", report, re.M)
