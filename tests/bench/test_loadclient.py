"""The benchmark's load client counts what the server really answered.

A benchmark is only as honest as its client: these tests run it against a tiny real HTTP/1.1
server on a free 127.0.0.1 port whose answers are known in advance (alternating 200/429, a
fixed delay, chunked bodies, closed connections, silence) and check every tally.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from bench.loadclient import LoadSpec, run_load

HOST = "127.0.0.1"
BODIES = [b'{"text": "a fine film"}', b'{"text": "a dreadful film, truly"}']


@dataclass(frozen=True)
class Answer:
    status: int
    delay_s: float = 0.0
    chunked: bool = False
    close: bool = False
    silent: bool = False


class _ScriptedHTTP(asyncio.Protocol):
    """Parses pipelined-or-not POSTs by Content-Length and answers from a shared script."""

    def __init__(self, next_answer: Callable[[], Answer], received: list[bytes]) -> None:
        self.next_answer = next_answer
        self.received = received
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            if len(self.buffer) < end + 4 + length:
                return
            self.received.append(bytes(self.buffer[end + 4 : end + 4 + length]))
            del self.buffer[: end + 4 + length]
            answer = self.next_answer()
            if not answer.silent:
                asyncio.get_running_loop().call_later(answer.delay_s, self._respond, answer)

    def _respond(self, answer: Answer) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        body = b'{"ok": true}'
        headers = [f"HTTP/1.1 {answer.status} X".encode(), b"Content-Type: application/json"]
        if answer.close:
            headers.append(b"Connection: close")
        if answer.chunked:
            headers.append(b"Transfer-Encoding: chunked")
            payload = b"4\r\n" + body[:4] + b"\r\n" + b"8\r\n" + body[4:] + b"\r\n0\r\n\r\n"
        else:
            headers.append(f"Content-Length: {len(body)}".encode())
            payload = body
        self.transport.write(b"\r\n".join(headers) + b"\r\n\r\n" + payload)
        if answer.close:
            self.transport.close()


@dataclass
class ScriptedServer:
    port: int
    received: list[bytes]


@pytest.fixture
def scripted_server(request: pytest.FixtureRequest) -> Iterator[ScriptedServer]:
    """A real server in a thread; the test's parametrised script decides every answer."""
    script: Iterator[Answer] = itertools.cycle(request.param)
    lock = threading.Lock()
    received: list[bytes] = []

    def next_answer() -> Answer:
        with lock:
            return next(script)

    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, asyncio.Server] = {}

    async def serve() -> None:
        holder["server"] = await loop.create_server(
            lambda: _ScriptedHTTP(next_answer, received), HOST, 0
        )
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(timeout=5)
    assert started.wait(5)
    port = holder["server"].sockets[0].getsockname()[1]
    try:
        yield ScriptedServer(port=port, received=received)
    finally:

        async def stop() -> None:
            holder["server"].close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def _spec(port: int, **overrides: float) -> LoadSpec:
    settings: dict[str, float] = {
        "concurrency": 4,
        "max_requests": 200,
        "duration_s": 10.0,
        "request_timeout_s": 5.0,
    }
    settings.update(overrides)
    return LoadSpec(
        host=HOST,
        port=port,
        path="/v1/predict",
        bodies=BODIES,
        concurrency=int(settings["concurrency"]),
        max_requests=int(settings["max_requests"]),
        duration_s=settings["duration_s"],
        request_timeout_s=settings["request_timeout_s"],
    )


@pytest.mark.parametrize(
    "scripted_server", [[Answer(200, delay_s=0.002), Answer(429, delay_s=0.002)]], indirect=True
)
def test_counts_every_status_and_latency_up_to_the_request_budget(
    scripted_server: ScriptedServer,
) -> None:
    result = run_load(_spec(scripted_server.port, max_requests=200))

    assert result.completed == 200
    assert result.status_counts == {200: 100, 429: 100}
    assert len(result.latencies_s) == 200
    assert result.timeouts == 0
    assert result.errors == 0
    assert min(result.latencies_s) >= 0.002  # the server's scripted delay is in every latency
    assert 2.0 <= result.p50_ms <= result.p99_ms
    assert result.requests_per_s == pytest.approx(200 / result.elapsed_s)
    assert result.client_cpu_s > 0
    # Every body was sent, in rotation, as written.
    assert set(scripted_server.received) == set(BODIES)
    assert len(scripted_server.received) == 200


@pytest.mark.parametrize("scripted_server", [[Answer(200, delay_s=0.01)]], indirect=True)
def test_stops_at_the_time_limit_when_the_budget_is_larger(
    scripted_server: ScriptedServer,
) -> None:
    started = time.perf_counter()
    result = run_load(_spec(scripted_server.port, max_requests=10**9, duration_s=0.5))
    wall = time.perf_counter() - started

    assert wall < 3.0
    # 4 connections x ~10 ms per answer x 0.5 s: far fewer than the budget, about 200.
    assert 20 <= result.completed <= 400
    assert result.status_counts == {200: result.completed}


@pytest.mark.parametrize(
    "scripted_server",
    [[Answer(200, chunked=True), Answer(200, close=True), Answer(503)]],
    indirect=True,
)
def test_parses_chunked_bodies_and_reconnects_after_connection_close(
    scripted_server: ScriptedServer,
) -> None:
    result = run_load(_spec(scripted_server.port, concurrency=3, max_requests=90))

    assert result.completed == 90
    assert result.status_counts == {200: 60, 503: 30}
    assert result.errors == 0
    assert result.timeouts == 0


@pytest.mark.parametrize("scripted_server", [[Answer(200, silent=True)]], indirect=True)
def test_counts_unanswered_requests_as_timeouts_and_still_ends(
    scripted_server: ScriptedServer,
) -> None:
    started = time.perf_counter()
    result = run_load(
        _spec(scripted_server.port, concurrency=2, duration_s=0.5, request_timeout_s=0.2)
    )
    wall = time.perf_counter() - started

    assert result.completed == 0
    assert result.status_counts == {}
    assert result.timeouts >= 2  # each connection timed out at least once, then reconnected
    assert wall < 3.0
