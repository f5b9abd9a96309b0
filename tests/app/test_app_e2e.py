"""A real server in a subprocess on a free 127.0.0.1 port (bench.servers), driven with httpx."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.servers import SERVICE, Server, running_server
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.e2e

STARTUP_SECONDS = 60.0


def _env(model_base: Path, **extra: str) -> dict[str, str]:
    return {
        "SENTIMENT_MODEL_BASE_PATH": str(model_base),
        "SENTIMENT_RELOAD_INTERVAL_SECONDS": "0",
        **extra,
    }


@contextlib.contextmanager
def _served(name: str, target: str, env: dict[str, str]) -> Iterator[Server]:
    """A ready server for the block, always stopped (the whole process group) afterwards."""
    with running_server(name, target, env, REPO_ROOT, "/readyz", STARTUP_SECONDS) as server:
        yield server


def _metric_values(exposition: str) -> dict[str, float]:
    values = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


@pytest.fixture
def uvicorn_server(model_base: Path) -> Iterator[Server]:
    """``create_app`` served by plain uvicorn (no process tuning): the factory is enough."""
    with _served("uvicorn", "app.main:create_app", _env(model_base)) as server:
        yield server


def test_uvicorn_serves_the_shipped_model(
    uvicorn_server: Server, api_samples: list[dict[str, Any]]
) -> None:
    sample = api_samples[0]
    with httpx.Client(base_url=uvicorn_server.url, timeout=10) as client:
        response = client.post("/v1/predict", json={"text": sample["text"]})
        assert response.status_code == 200
        body = response.json()
        assert body["model_version"] == "1"
        assert body["probability"] == pytest.approx(sample["probability"], abs=1e-5)

        texts = [s["text"] for s in api_samples]
        batch = client.post("/v1/predict/batch", json={"texts": texts}).json()
        assert [p["probability"] for p in batch["predictions"]] == pytest.approx(
            [s["probability"] for s in api_samples], abs=1e-5
        )
        compat = client.post("/v1/models/sentiment:predict", json={"instances": texts})
        assert len(compat.json()["predictions"]) == len(texts)

        bad = client.post("/v1/predict", json={"text": "zq-e2e-secret", "oops": 1})
        assert bad.status_code == 422
        assert bad.json()["error"]["type"] == "invalid_input"
        assert client.get("/healthz").status_code == 200
        assert "sentiment_http_requests_total" in client.get("/metrics").text
    assert "zq-e2e-secret" not in uvicorn_server.log()
    assert "Traceback" not in uvicorn_server.log()


def test_sigterm_finishes_in_flight_requests_and_exits_zero(model_base: Path) -> None:
    env = _env(model_base, SENTIMENT_MAX_BODY_BYTES=str(8 * 1024 * 1024))
    with _served("app", SERVICE, env) as server:
        # Heavy requests (~70 ms of model time each, a few ms to upload and parse) so that
        # many are received and still queued when SIGTERM lands.
        texts = [f"Review {i}: a wonderful mess of ideas. " * 400 for i in range(256)]
        results: list[tuple[int | str, float]] = []
        lock = threading.Lock()

        def post() -> None:
            try:
                with httpx.Client(base_url=server.url, timeout=60) as client:
                    status: int | str = client.post(
                        "/v1/predict/batch", json={"texts": texts}
                    ).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            with lock:
                results.append((status, time.monotonic()))

        threads = [threading.Thread(target=post) for _ in range(16)]
        for thread in threads:
            thread.start()
        # Signal only once the server has received every request (a connection still in the
        # listen backlog is not in flight: a stopping server rightly never accepts it).
        deadline = time.monotonic() + 30
        all_received = False
        with httpx.Client(base_url=server.url, timeout=5) as probe:
            while time.monotonic() < deadline and not all_received:
                metrics = _metric_values(probe.get("/metrics").text)
                in_progress = metrics["sentiment_http_requests_in_progress"] - 1  # the probe
                answered = metrics.get(
                    'sentiment_http_requests_total{method="POST",route="/v1/predict/batch",'
                    'status="200",version="1"}',
                    0.0,
                )
                all_received = in_progress + answered == len(threads) and in_progress >= 2
        assert all_received, "the requests were never all in flight together"
        sigterm_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(60)
        exit_code = server.process.wait(60)

        assert [status for status, _ in results] == [200] * len(threads)
        assert any(finished > sigterm_at for _, finished in results), "nothing was in flight"
        assert exit_code == 0, server.log()
        assert "shut down cleanly" in server.log() or "Finished server process" in server.log()


def _worker_pids(exposition: str) -> set[int]:
    """Worker pids reporting a live model (``sentiment_model_info`` is per worker when shared)."""
    return {
        int(match)
        for match in re.findall(
            r'^sentiment_model_info\{[^}]*pid="(\d+)"[^}]*\} 1\.0$', exposition, re.M
        )
    }


def _worker_cpus(pids: set[int]) -> dict[int, frozenset[int]]:
    """The CPUs each worker's threads may run on (every thread of a worker must agree)."""
    cpus = {}
    for pid in pids:
        masks = {
            frozenset(os.sched_getaffinity(int(task.name)))
            for task in Path(f"/proc/{pid}/task").iterdir()
        }
        assert len(masks) == 1, f"worker {pid}'s threads disagree on their CPUs: {masks}"
        [cpus[pid]] = masks
    return cpus


def _assert_bound_as_settings_say(cpus: dict[int, frozenset[int]]) -> None:
    """Two workers on a 2-CPU machine (the CI's): one CPU each; anywhere else: unbound."""
    allowed = frozenset(os.sched_getaffinity(0))
    if len(allowed) == 2:
        assert set(cpus.values()) == {frozenset({cpu}) for cpu in allowed}, cpus
    else:
        assert set(cpus.values()) == {allowed}


def _connections_per_process(port: int, pids: set[int]) -> dict[int, int]:
    """Established server-side connections on ``port`` held by each process, from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(f"socket:[{fields[9]}]")
    counts = {}
    for pid in pids:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                held += str(fd.readlink()) in inodes
        counts[pid] = held
    return counts


def _open_keep_alive_connections(port: int, count: int) -> list[socket.socket]:
    """``count`` connections opened in a burst, each proven accepted by one answered request."""
    connections = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    for connection in connections:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    for connection in connections:
        assert connection.recv(4096).startswith(b"HTTP/1.1 200")
    return connections


def test_workers_share_one_metrics_view_that_survives_a_crashed_worker(
    model_base: Path, tmp_path: Path
) -> None:
    """Two workers: connections spread over both, /metrics adds both up wherever a scrape
    lands, and a killed worker's replacement takes over its live gauges while the request
    totals never go back."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # A previous run's leftover must be cleared at startup (prometheus-client requires it).
    (metrics_dir / "counter_1.db").write_bytes(b"not a metrics file")
    env = _env(model_base, SENTIMENT_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    with _served("app", SERVICE, env) as server:
        port = server.port
        deadline = time.monotonic() + STARTUP_SECONDS
        while len(_worker_pids(httpx.get(f"{server.url}/metrics").text)) < 2:
            assert time.monotonic() < deadline, "the second worker never reported"
            time.sleep(0.2)
        assert not (metrics_dir / "counter_1.db").exists()

        requests = 40
        for _ in range(requests):  # a new connection each: the kernel spreads them over workers
            response = httpx.post(f"{server.url}/v1/predict", json={"text": "A fine film."})
            assert response.status_code == 200
        exposition = httpx.get(f"{server.url}/metrics").text
        values = _metric_values(exposition)
        predicted = (
            'sentiment_http_requests_total{method="POST",route="/v1/predict",status="200",'
            'version="1"}'
        )
        assert values[predicted] == requests
        # The model threads' figures, written by each worker's event loop once it is idle.
        assert values["sentiment_batch_size_texts_sum"] == requests
        rest_tokens = 'sentiment_input_tokens_count{protocol="rest",version="1"}'
        assert values[rest_tokens] == requests
        assert values["sentiment_model_ready"] == 1
        pids = _worker_pids(exposition)
        assert len(pids) == 2
        cpus = _worker_cpus(pids)
        _assert_bound_as_settings_say(cpus)

        # Keep-alive clients connect in bursts; with one shared listening socket the first
        # worker to wake took them all. Each worker's own socket lets the kernel spread them.
        connections = _open_keep_alive_connections(port, 32)
        try:
            spread = _connections_per_process(port, pids)
        finally:
            for connection in connections:
                connection.close()
        assert sum(spread.values()) == 32, spread
        assert min(spread.values()) >= 4, f"connections not spread over workers: {spread}"

        killed = min(pids)
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert time.monotonic() < deadline, f"no replacement worker:\n{server.log()}"
            try:
                exposition = httpx.get(f"{server.url}/metrics").text
            except httpx.TransportError:
                exposition = ""
            current = _worker_pids(exposition)
            if len(current) == 2 and killed not in current:
                break
            time.sleep(0.2)
        # The replacement takes the CPU of the worker it replaces.
        assert set(_worker_cpus(current).values()) == set(cpus.values())
        assert _metric_values(exposition)[predicted] == requests

        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(60) == 0, server.log()
        assert "Traceback" not in server.log()
