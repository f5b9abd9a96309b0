"""What a connection may cost before it is a request, and how connections end on shutdown.

uvicorn's httptools protocol buffers the request line and headers itself, before the ASGI app
sees anything, and bounds neither their size nor the time a client takes to send them: a huge
header was read whole and answered, many at once took gigabytes, and connections trickling a
header line now and then stayed open forever. So the limits live here, at the protocol level,
in a small subclass of uvicorn's ``HttpToolsProtocol``:

* the request head (request line plus headers) is fed to the parser at most
  ``max_head_bytes`` at a time; a head still incomplete past that is answered 431 and the
  connection closed, so memory per connection stays bounded however large the header is;
* a head must arrive within ``head_timeout_seconds`` of the connection opening (first
  request) or of its first byte (later requests on a keep-alive connection), else 408 and close;
* a body must arrive within ``body_timeout_seconds`` of its head, else 408 and close: a client
  trickling a body a byte a second held its request and connection open for as long as it
  liked;
* on shutdown (SIGTERM), an idle keep-alive connection is not closed at once: a request the
  client already sent on it would be lost (uvicorn's ``shutdown`` closes it, and the client
  sees a reset for a POST it will not retry). It stays open for ``drain_idle_seconds``;
  any request arriving meanwhile is answered with ``Connection: close``. Requests in flight
  are answered with ``Connection: close`` too (uvicorn's behaviour, kept).

``DrainingServer`` drains without losing a request, in this order:

1. At the signal, readiness turns false (the hook the app put in the lifespan state,
   ``ON_DRAIN_STATE_KEY``: the scoring core's ``start_draining``), so ``/readyz`` and gRPC
   health say "not serving" at once; requests keep being answered as before.
2. The listening sockets close without dropping a connection: every connection the kernel
   already completed into the accept queue is accepted and served, then the socket closes.
   A connection left in the queue when its listener closes is reset by the kernel, after the
   client's ``connect()`` succeeded and often after it sent its request: that is what lost
   requests under load before (measured in docs/operations.md).
3. With several workers (``app.workers``), each waits until every worker's listener is
   closed (``ListenerCoordinator``). Only then are clients told to go away: responses say
   ``Connection: close`` (the lifespan state's ``DRAINING_STATE_KEY``, copied into every
   request's ``scope["state"]``), idle connections close after ``drain_idle_seconds``, and the
   app's other servers close theirs (``ON_CLOSE_STATE_KEY``: the gRPC server holds new calls
   until its clients are quiet, then sends GOAWAY; ``app.protocols.grpc.server``). Telling them
   earlier made keep-alive clients reconnect into a listener that was about to close, whose
   queue the kernel then reset; now a client that reconnects is refused (nothing listens), a
   clean error it can retry elsewhere.
4. uvicorn's own shutdown: in-flight requests are answered, connections close, the lifespan
   ends (the batcher answers what is queued), the process exits.

One window is left, and only for a connection that is not provoked by the drain: a client
whose handshake completes in the microseconds between the last ``accept`` and the close.
Linux can hand such connections to another listener of the port (``net.ipv4.tcp_migrate_req``,
a host setting; not something an application should change), and none is left at the last.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from types import FrameType
from typing import Any, ClassVar, NamedTuple, Protocol

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.core.errors import RequestHeadTooLargeError, RequestTimeoutError, ServiceError
from app.http.errors import error_body

logger = logging.getLogger(__name__)

# After a 431 the client is usually still sending its header: keep reading (and discarding)
# a little so it can see the answer instead of a reset, then close whatever it still sends.
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 256 * 1024

# Connections taken from a closing listener's accept queue at most (its backlog is smaller).
_MAX_QUEUED_ACCEPTS = 4096
# How long a draining worker waits for the other workers to close their listeners.
_COORDINATION_SECONDS = 5.0

# Lifespan state keys (the dict uvicorn shares with the app's lifespan and copies into requests).
DRAINING_STATE_KEY = "sentiment_draining"
"""Set to True at SIGTERM: responses from then on close their connection."""
ON_DRAIN_STATE_KEY = "sentiment_on_drain"
"""Where the app's lifespan puts a callable to run at SIGTERM (its readiness turns false)."""
ON_CLOSE_STATE_KEY = "sentiment_on_close"
"""Where the app's lifespan puts a callable to run once no listener accepts HTTP any more:
its other servers (gRPC) start closing their connections too."""


class ConnectionLimits(NamedTuple):
    """The per-connection limits ``guarded_protocol`` enforces (from Settings)."""

    max_head_bytes: int
    head_timeout_seconds: float
    body_timeout_seconds: float = 60.0
    drain_idle_seconds: float = 1.0


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` that enforces ``limits``."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


def raw_error_response(error: ServiceError) -> bytes:
    """The documented JSON error as raw HTTP/1.1 bytes, closing the connection.

    Written straight to the transport: these answers happen before there is an ASGI request
    (so before its path, and a protocol family's error shape, are known).
    """
    body = error_body(error)
    head = [
        STATUS_LINE[error.status_code],
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded, timed request head and a gentle drain."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits(16 * 1024, 10.0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = True  # the parser is inside a request head (or waiting for one)
        self._head_bytes = 0  # bytes fed to the parser since this head began
        # When the head in progress began, and when the body in progress began (loop time;
        # None when there is none). One timer per connection checks both and re-arms itself,
        # rather than a timer made and cancelled for every request, which cost the event loop
        # time on every request under load. It never waits longer than the shorter limit, so a
        # deadline set after it was armed (always at least that far away) is never checked late.
        self._head_started: float | None = None
        self._body_started: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self._draining = False
        self._discarding = False  # the connection is lingering after an error: read nothing
        self._discarded = 0

    # Connection life
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            self._discarded += len(data)
            if self._discarded > _LINGER_BYTES:
                self.transport.close()
            return
        while data:
            if not self._head_open:
                super().data_received(data)
                return
            allowed = self.limits.max_head_bytes - self._head_bytes
            piece, data = data[:allowed], data[allowed:]
            self._head_bytes += len(piece)
            if piece:
                super().data_received(piece)
            if self.transport.is_closing():
                return
            if data and self._head_open:
                self._reject(RequestHeadTooLargeError())
                return

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        if self._head_started is None:  # the first head's clock started with the connection
            self._start_head_clock()

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._head_started = None
        super().on_headers_complete()
        if self._draining or self.app_state.get(DRAINING_STATE_KEY):
            self.cycle.keep_alive = False  # the response says Connection: close
        # The body's clock (a request without one completes at once and clears it).
        self._body_started = self.loop.time()
        self._arm_timer()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._body_started = None
        self._head_open = True
        self._head_bytes = 0

    # Shutdown
    def shutdown(self) -> None:
        """Finish what was sent; close an idle connection only after a short quiet time."""
        self._draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
            return
        self._drain_timer = self.loop.call_later(
            self.limits.drain_idle_seconds, self._close_if_idle
        )

    def _close_if_idle(self) -> None:
        self._drain_timer = None
        if self.transport.is_closing():
            return
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy and self._head_bytes == 0:
            self.transport.close()
        # Otherwise a request is arriving or running: its response carries Connection: close
        # (or the head timeout ends a client that never finishes its head).

    # Limits
    def _start_head_clock(self) -> None:
        self._head_started = self.loop.time()
        self._arm_timer()

    def _arm_timer(self, delay: float | None = None) -> None:
        """Start the connection's timer unless it runs (it fires within the shorter limit)."""
        if self._timer is None:
            shorter = min(self.limits.head_timeout_seconds, self.limits.body_timeout_seconds)
            wait = shorter if delay is None else min(delay, shorter)
            self._timer = self.loop.call_later(wait, self._check_time)

    def _check_time(self) -> None:
        """The connection's timer: act on an expired head or body, else wait for the next."""
        self._timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        head_due = body_due = None
        if self._head_started is not None and self._head_open:
            head_due = self._head_started + self.limits.head_timeout_seconds
        if self._body_started is not None:
            body_due = self._body_started + self.limits.body_timeout_seconds
        if head_due is not None and head_due <= now:
            self._head_timed_out()
        elif body_due is not None and body_due <= now:
            if self.flow.read_paused:  # we stopped reading (a pipelined request, a full
                self._body_started = now  # buffer): the delay is ours, not the client's
                self._arm_timer()
            else:
                self._body_timed_out()
        else:  # nothing due yet (or nothing in progress: the next head or body arms it again)
            pending = [due for due in (head_due, body_due) if due is not None]
            if pending:
                self._arm_timer(min(pending) - now)

    def _head_timed_out(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self._start_head_clock()  # a pipelined head behind a running request: wait
            return
        if self._head_bytes:
            logger.info(
                "request head not received within %.0fs; closing",
                self.limits.head_timeout_seconds,
            )
            self._reject(
                RequestTimeoutError("The request line and headers did not arrive in time.")
            )
        else:
            self.transport.close()  # never sent a byte: nothing to answer

    def _body_timed_out(self) -> None:
        logger.info(
            "request body not received within %.0fs; closing", self.limits.body_timeout_seconds
        )
        self._body_started = None
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # an answer is under way (e.g. a 413): cut it short
            return
        self._reject(RequestTimeoutError("The request body did not arrive in time."))

    def _reject(self, error: ServiceError) -> None:
        """Answer ``error`` and close, lingering briefly so the client can read the answer."""
        self._discarding = True
        self._cancel_timers()
        self.transport.write(raw_error_response(error))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)

    def _cancel_timers(self) -> None:
        for timer in (self._timer, self._drain_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._drain_timer = None


class ListenerCoordinator(Protocol):
    """Tells the workers of one server when none of them accepts any more (``app.workers``)."""

    def opened(self) -> None:
        """This worker listens."""

    def closed(self) -> None:
        """This worker's listener is closed."""

    def any_open(self) -> bool:
        """Whether a worker still listens."""


def accept_queued(listener_fd: int, limit: int = _MAX_QUEUED_ACCEPTS) -> list[socket.socket]:
    """Every connection waiting in the accept queue of the listening socket ``listener_fd``
    (non-blocking ``accept`` until there is none)."""
    accepted: list[socket.socket] = []
    with socket.socket(fileno=os.dup(listener_fd)) as listener:
        listener.setblocking(False)
        while len(accepted) < limit:
            try:
                connection, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            accepted.append(connection)
    return accepted


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain that loses no request (the module's docstring)."""

    def __init__(
        self, config: uvicorn.Config, coordinator: ListenerCoordinator | None = None
    ) -> None:
        super().__init__(config)
        self._coordinator = coordinator
        self._drain_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._adopting: set[asyncio.Task[Any]] = set()  # queued connections being taken over

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)
        if self.started and self._coordinator is not None:
            self._coordinator.opened()
        if self.started and self._drain_requested and not self.should_exit:
            # Told to stop while starting (a rollout): the app serves now (its other
            # servers too), so it drains like any serving process rather than stopping short.
            self._begin_drain()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_requested or self._loop is None:
            # A second signal, or none of ours yet: uvicorn's own handling (which forces).
            super().handle_exit(sig, frame)
            return
        self._drain_requested = True
        if self.started:
            self._begin_drain()
        # Still starting (loading the model): startup() drains once it serves.

    def _begin_drain(self) -> None:
        on_drain = self.lifespan.state.get(ON_DRAIN_STATE_KEY)
        if callable(on_drain):
            on_drain()  # readiness turns false now
        # From a signal handler the event loop must not be touched: the drain runs on it.
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._drain_task = asyncio.get_running_loop().create_task(self._drain(), name="drain")

    async def _drain(self) -> None:
        try:
            self.stop_accepting()
            if self._coordinator is not None:
                self._coordinator.closed()
                await self._others_stopped_accepting()
            state = self.lifespan.state
            state[DRAINING_STATE_KEY] = True  # from now on responses close their connection
            on_close = state.get(ON_CLOSE_STATE_KEY)
            if callable(on_close):
                on_close()
        finally:
            self.should_exit = True  # uvicorn's shutdown: answer in-flight requests, exit

    def stop_accepting(self) -> None:
        """Close every listener, serving the connections already waiting in its queue.

        Synchronous on the event loop, so uvicorn accepts nothing meanwhile: its servers
        close first, then a duplicate of each listening socket (which keeps the socket open)
        accepts what is queued and is closed last, right after the queue is found empty.
        """
        loop = asyncio.get_running_loop()
        duplicates = [
            os.dup(listener.fileno()) for server in self.servers for listener in server.sockets
        ]
        for server in self.servers:
            server.close()
        waiting: list[socket.socket] = []
        for duplicate in duplicates:
            try:
                waiting += accept_queued(duplicate)
            finally:
                os.close(duplicate)
        for connection in waiting:
            adopt = loop.create_task(loop.connect_accepted_socket(self._new_protocol, connection))
            self._adopting.add(adopt)
            adopt.add_done_callback(self._adopting.discard)
        logger.info(
            "stopped accepting connections (%d waiting in the queue, all served)", len(waiting)
        )

    def _new_protocol(self) -> asyncio.Protocol:
        protocol: asyncio.Protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
            _loop=self._loop,
        )
        return protocol

    async def _others_stopped_accepting(self) -> None:
        """Wait (bounded) until no worker listens, so no client is sent to a closing one."""
        coordinator = self._coordinator
        assert coordinator is not None
        deadline = asyncio.get_running_loop().time() + _COORDINATION_SECONDS
        while coordinator.any_open():
            if asyncio.get_running_loop().time() > deadline:
                logger.warning("another worker still accepts; closing connections anyway")
                return
            await asyncio.sleep(0.0005)  # all workers close their connections together
