"""SIGTERM under steady REST and gRPC load loses nothing (tests/app/drain_load.py).

Five times in a row, a fresh ``python -m app`` with the shipped worker count (each worker
drains its HTTP and gRPC listeners, coordinated with the others), 32 keep-alive REST clients
that reconnect after ``Connection: close`` and 16 gRPC channels calling ``ModelInfer`` back to
back: every request is answered or cleanly refused (a 503, a refused connection, gRPC
UNAVAILABLE), none is reset, cancelled, times out or disappears, and the server exits 0.
Bounded: each client stops at its first refusal after the signal, at most 50,000 requests or
60 s.

And the reset the HTTP drain avoids, forced: connections waiting in a listener's accept queue
when it closes are reset by the kernel, unless the drain accepts and serves them first.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from app.http.connections import ConnectionLimits, DrainingServer, guarded_protocol
from app.settings import Settings
from app.workers import reuse_port_socket
from bench.servers import HOST
from tests.app.drain_load import run_once

RUNS = 5
REST_CLIENTS = 32
GRPC_CLIENTS = 16


@pytest.fixture
def model_copy(tmp_path: Path, source_version_dir: Path) -> Path:
    base = tmp_path / "sentiment"
    base.mkdir()
    shutil.copytree(source_version_dir, base / "1")
    return base


@pytest.mark.e2e
@pytest.mark.slow
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


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI app: 200 "ok" to every request."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _close_with_a_full_accept_queue(
    close: Callable[[DrainingServer], None], connections: int = 50
) -> Counter[str]:
    """How ``connections`` requests end when the listener closes (``close``) while all of them
    wait in its accept queue: the event loop is blocked while the clients connect (the kernel
    completes their handshakes) and send, then closes the listener in the same step."""
    outcomes: Counter[str] = Counter()
    connected = threading.Semaphore(0)

    def client(port: int) -> None:
        with socket.create_connection((HOST, port), timeout=10) as sock:
            connected.release()
            try:
                sock.sendall(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
                answer = sock.recv(64)
            except ConnectionResetError:
                outcomes["reset"] += 1
                return
            outcomes["answered" if answer.startswith(b"HTTP/1.1 200") else "closed"] += 1

    async def scenario() -> None:
        limits = ConnectionLimits(max_head_bytes=16 * 1024, head_timeout_seconds=10.0)
        config = uvicorn.Config(_hello, lifespan="off", http=guarded_protocol(limits))
        server = DrainingServer(config)
        listener = reuse_port_socket(HOST, 0)
        port = listener.getsockname()[1]
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            await asyncio.sleep(0.01)
        clients = [threading.Thread(target=client, args=(port,)) for _ in range(connections)]
        closed = asyncio.get_running_loop().create_future()

        def block_then_close() -> None:
            for thread in clients:
                thread.start()
            for _ in clients:
                assert connected.acquire(timeout=10)
            time.sleep(0.1)  # their requests arrive; nothing is accepted meanwhile
            close(server)
            closed.set_result(None)

        asyncio.get_running_loop().call_soon(block_then_close)
        await closed
        await asyncio.to_thread(lambda: [thread.join(10) for thread in clients])
        server.should_exit = True
        await serving

    asyncio.run(scenario())
    return outcomes


def test_connections_waiting_in_a_closing_listeners_queue_are_served() -> None:
    """The kernel resets what is left in a listener's accept queue when it closes; the drain
    accepts and serves it first (docs/operations.md, "Shutdown and drain")."""

    def uvicorn_close(server: DrainingServer) -> None:  # what uvicorn's own shutdown does
        for listening in server.servers:
            listening.close()

    assert _close_with_a_full_accept_queue(uvicorn_close) == Counter(reset=50)
    assert _close_with_a_full_accept_queue(DrainingServer.stop_accepting) == Counter(answered=50)
