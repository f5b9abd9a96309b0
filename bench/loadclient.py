"""A raw asyncio HTTP/1.1 keep-alive load client.

httpx tops out at a few hundred requests/s on this machine, far below the servers being measured,
so the benchmark drives them with this client instead: each connection is an `asyncio.Protocol`
that writes a pre-encoded request, parses only the status line and the body length of the answer,
records the latency and immediately writes the next request. No per-request coroutine, no header
dictionary, no JSON decoding: the client's CPU cost per request stays a few microseconds so it is
not the bottleneck (its CPU time is reported beside every figure to keep that claim checkable).

The load is bounded both by a request count and by wall-clock time; a request that gets no answer
within `request_timeout_s` is counted as a timeout and its connection is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import resource
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

_HEADER_END = b"\r\n\r\n"


@dataclass(frozen=True)
class LoadSpec:
    """What to send, to whom, how hard and for how long."""

    host: str
    port: int
    path: str
    bodies: Sequence[bytes]
    concurrency: int
    max_requests: int
    duration_s: float
    request_timeout_s: float = 10.0


@dataclass
class LoadResult:
    """Counts and latencies of one bounded load run, as measured by the client."""

    concurrency: int
    completed: int
    elapsed_s: float
    latencies_s: list[float] = field(repr=False)
    status_counts: dict[int, int]
    timeouts: int
    errors: int
    client_cpu_s: float
    # wrk reports percentiles and a rate rather than every latency (bench.wrk).
    reported_percentiles_ms: dict[float, float] | None = None
    reported_requests_per_s: float | None = None

    @property
    def requests_per_s(self) -> float:
        if self.reported_requests_per_s is not None:
            return self.reported_requests_per_s
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of the answered requests' latencies, in milliseconds.

        For a wrk run: the percentile wrk reported (NaN if it reported no such percentile).
        """
        if self.reported_percentiles_ms is not None:
            return self.reported_percentiles_ms.get(q, float("nan"))
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        rank = max(0, min(len(ordered) - 1, math.ceil(q / 100.0 * len(ordered)) - 1))
        return ordered[rank] * 1000.0

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50.0)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99.0)

    @property
    def client_cpu_share(self) -> float:
        """Client CPU seconds per wall second: 1.0 means the client kept one core busy."""
        return self.client_cpu_s / self.elapsed_s if self.elapsed_s > 0 else 0.0


def encode_requests(host: str, port: int, path: str, bodies: Sequence[bytes]) -> list[bytes]:
    """Pre-encode every request once so the hot loop only writes bytes."""
    encoded = []
    for body in bodies:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        encoded.append(head.encode("latin-1") + body)
    return encoded


class _Run:
    """State shared by all connections of one run: budget, deadline and the tallies."""

    def __init__(self, spec: LoadSpec, loop: asyncio.AbstractEventLoop) -> None:
        self.spec = spec
        self.loop = loop
        self.requests = encode_requests(spec.host, spec.port, spec.path, spec.bodies)
        self.deadline = 0.0
        self.issued = 0
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.timeouts = 0
        self.errors = 0
        self.last_answer_at = 0.0
        self.active = 0
        self.all_done = loop.create_future()

    def may_issue(self) -> bool:
        return self.issued < self.spec.max_requests and time.perf_counter() < self.deadline

    def connection_finished(self) -> None:
        self.active -= 1
        if self.active == 0 and not self.all_done.done():
            self.all_done.set_result(None)


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending requests back to back.

    Responses are parsed from the raw byte stream: the status code sits at a fixed offset of the
    status line and the body length comes from Content-Length (or, if a server streams, from the
    chunked framing).
    """

    def __init__(self, run: _Run, start_index: int) -> None:
        self.run = run
        self.request_cycle = itertools.cycle(
            run.requests[start_index % len(run.requests) :]
            + run.requests[: start_index % len(run.requests)]
        )
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.in_flight = False
        self.timeout_handle: asyncio.TimerHandle | None = None
        self.closed = asyncio.get_running_loop().create_future()

    # --- asyncio.Protocol callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.in_flight:
            try:
                parsed = _parse_response(self.buffer)
            except ValueError:
                # Unparseable answer: count it once (connection_lost sees it in flight) and move on.
                self._close()
                return
            if parsed is None:
                return
            status, consumed, must_close = parsed
            del self.buffer[:consumed]
            self._answered(status)
            if must_close:
                self._close()
                return
            self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            self.in_flight = False
            self.run.errors += 1
        self._cancel_timer()
        if not self.closed.done():
            self.closed.set_result(None)

    # --- request cycle ----------------------------------------------------------------------------
    def send_next(self) -> None:
        if self.transport is None or self.transport.is_closing() or not self.run.may_issue():
            self._close()
            return
        self.run.issued += 1
        self.in_flight = True
        self.sent_at = time.perf_counter()
        self.timeout_handle = self.run.loop.call_later(
            self.run.spec.request_timeout_s, self._timed_out
        )
        self.transport.write(next(self.request_cycle))

    def _answered(self, status: int) -> None:
        now = time.perf_counter()
        self._cancel_timer()
        self.in_flight = False
        self.run.latencies.append(now - self.sent_at)
        self.run.statuses[status] += 1
        self.run.last_answer_at = now

    def _timed_out(self) -> None:
        self.timeout_handle = None
        if self.in_flight:
            self.in_flight = False
            self.run.timeouts += 1
        self._close()

    def _cancel_timer(self) -> None:
        if self.timeout_handle is not None:
            self.timeout_handle.cancel()
            self.timeout_handle = None

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _parse_response(buffer: bytearray) -> tuple[int, int, bool] | None:
    """Return (status, bytes consumed, server closes) for one complete response, else None."""
    header_end = buffer.find(_HEADER_END)
    if header_end < 0:
        return None
    head = bytes(buffer[:header_end]).lower()
    status = int(head[9:12])
    body_start = header_end + len(_HEADER_END)
    must_close = b"\r\nconnection: close" in head
    length_at = head.find(b"\r\ncontent-length:")
    if length_at >= 0:
        line_end = head.find(b"\r\n", length_at + 2)
        raw_length = head[length_at + 17 : line_end if line_end >= 0 else len(head)]
        end = body_start + int(raw_length)
        return (status, end, must_close) if len(buffer) >= end else None
    if b"\r\ntransfer-encoding: chunked" in head:
        chunked_end = _chunked_end(buffer, body_start)
        return (status, chunked_end, must_close) if chunked_end is not None else None
    if status in (204, 304) or 100 <= status < 200:
        return status, body_start, must_close
    # No framing: the body runs until the server closes; a benchmark target never does this.
    raise ValueError(f"response without Content-Length or chunked framing (status {status})")


def _chunked_end(buffer: bytearray, position: int) -> int | None:
    """Offset just past a complete chunked body starting at `position`, else None."""
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";", 1)[0], 16)
        position = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", position)
            # Trailers are not expected; an empty line ends the message.
            return trailer_end + 2 if trailer_end >= 0 else None
        position += size + 2
        if position > len(buffer):
            return None


async def _connection_loop(run: _Run, start_index: int) -> None:
    """Keep one connection slot busy until the budget or the deadline runs out.

    A connection that the server closes (or that timed out) is replaced by a fresh one, so one
    misbehaving answer does not silently lower the concurrency for the rest of the run.
    """
    try:
        while run.may_issue():
            try:
                _, protocol = await run.loop.create_connection(
                    functools.partial(_Connection, run, start_index), run.spec.host, run.spec.port
                )
            except OSError:
                run.errors += 1
                await asyncio.sleep(0.01)
                continue
            protocol.send_next()
            await protocol.closed
            start_index += 1
    finally:
        run.connection_finished()


async def run_load_async(spec: LoadSpec) -> LoadResult:
    """Drive `spec.concurrency` keep-alive connections against one endpoint, bounded."""
    if not spec.bodies:
        raise ValueError("at least one request body is needed")
    loop = asyncio.get_running_loop()
    run = _Run(spec, loop)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    run.deadline = started + spec.duration_s
    run.active = spec.concurrency
    tasks = [
        asyncio.create_task(_connection_loop(run, index * 7)) for index in range(spec.concurrency)
    ]
    try:
        await run.all_done
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    finished = run.last_answer_at if run.latencies else time.perf_counter()
    client_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime
    )
    return LoadResult(
        concurrency=spec.concurrency,
        completed=len(run.latencies),
        elapsed_s=max(finished - started, 1e-9),
        latencies_s=run.latencies,
        status_counts=dict(sorted(run.statuses.items())),
        timeouts=run.timeouts,
        errors=run.errors,
        client_cpu_s=client_cpu,
    )


def run_load(spec: LoadSpec) -> LoadResult:
    """Synchronous entry point; uses uvloop when available, as the servers do."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency via uvicorn[standard]
        return asyncio.run(run_load_async(spec))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_load_async(spec))
