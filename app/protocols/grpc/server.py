"""The gRPC server of one app: started and stopped by the app's lifespan, on its event loop.

``GrpcProtocol`` is a protocol adapter like the REST ones, with no routes: its lifespan starts
a ``grpc.aio`` server on ``SENTIMENT_GRPC_PORT`` once the scoring core serves (so a worker only
listens once its model is loaded, as the HTTP side does) and stops it before the core drains.
Every method goes through the same core as REST: the version resolved once per call (an
unversioned call carrying ``x-request-id`` metadata stays on its side of the canary split, as
REST's ``X-Request-ID`` does), the limits, the micro-batcher, the API key and the error table;
the body limit (``SENTIMENT_MAX_BODY_BYTES``) is the largest message the server receives
(bigger ones get grpc's RESOURCE_EXHAUSTED before they are parsed).

The port is bound with ``SO_REUSEPORT`` (grpc's default on Linux, as TF Serving, KServe and
MLServer run it), so every worker of ``python -m app`` serves the same port and the kernel
spreads connections over them, as ``app.workers`` does for HTTP.

Stopping (``start_closing`` at SIGTERM once every worker stopped accepting HTTP, or the
lifespan's end) loses no call. Health reports NOT_SERVING from the moment SIGTERM arrives (it
follows the core's readiness) while calls are still answered, so a load balancer stops
sending first. Then:

1. New calls are held (``calls.CallGate``), not answered; calls in flight carry on and
   health watches end. A client waits for the call it sent, so the calls stop arriving.
2. Once no call arrived for ``QUIET_SECONDS`` (at most ``HOLD_SECONDS``), grpc's
   ``server.stop`` closes the listener and sends GOAWAY. Nothing is pending in grpc then:
   what grpc had received but not handed over, or receives until the client reads the
   GOAWAY, it would end CANCELLED (grpc/grpc#41785), which a client cannot safely retry.
3. The held calls are answered (after the GOAWAY, so each client's next call opens a new
   connection: to another worker or replica, or refused while nothing listens, UNAVAILABLE,
   which clients retry), and what is in flight finishes within
   ``SENTIMENT_GRACEFUL_SHUTDOWN_SECONDS``.

Measured in docs/operations.md ("Shutdown and drain"): answering calls until ``stop`` (as
before) lost a few calls per SIGTERM under load, holding them lost none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import grpc

from app.core.errors import InvalidInputError
from app.core.scoring import ScoringCore
from app.metrics import ServiceMetrics
from app.protocols.base import REQUEST_ID_HEADER, ProtocolAdapter
from app.protocols.grpc.calls import CallRunner, Context

logger = logging.getLogger(__name__)

# Closing: the server stops once no call arrived for this long (every client's call is held:
# clients that send their next call within this time after an answer are all waiting), or
# after HOLD_SECONDS (bounded by the graceful shutdown time) if calls keep arriving.
QUIET_SECONDS = 0.05
HOLD_SECONDS = 2.0


def listen_address(host: str, port: int) -> str:
    """``host:port`` as grpc wants it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_version(text: str) -> int | None:
    """A version given as text (the Open Inference Protocol's ``model_version``): None when
    empty (the default version), else an integer; INVALID_ARGUMENT otherwise."""
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise InvalidInputError("A model version must be an integer.")
    return int(text)


class GrpcProtocol(ProtocolAdapter):
    """The gRPC services of one app, over its scoring core."""

    def __init__(self, core: ScoringCore, metrics: ServiceMetrics, server_version: str) -> None:
        super().__init__(core)
        self.server_version = server_version
        self.calls = CallRunner(core.auth, metrics, core.settings.access_log)
        self.stopping = asyncio.Event()  # health watches end when it is set
        self.bound_port: int | None = None  # the port in use while serving
        self._server: grpc.aio.Server | None = None
        self._stop: asyncio.Task[None] | None = None

    def call_request_id(self, context: Context) -> str | None:
        """The client's ``x-request-id`` metadata, read only while a canary split uses it:
        the same id reaches the same version as REST's ``X-Request-ID`` (``resolve``)."""
        if not self._reads_request_id:
            return None
        for key, value in context.invocation_metadata() or ():
            if key == REQUEST_ID_HEADER and isinstance(value, str):
                return value
        return None

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._serving()

    @contextlib.asynccontextmanager
    async def _serving(self) -> AsyncIterator[None]:
        settings = self.core.settings
        if settings.grpc_port == 0:
            yield
            return
        server = self._build_server()
        address = listen_address(settings.host, settings.grpc_port)
        try:
            self.bound_port = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
            raise OSError(f"cannot serve gRPC on {address}: the port is taken") from exc
        await server.start()
        self._server = server
        logger.info("gRPC serving on %s", listen_address(settings.host, self.bound_port))
        try:
            yield
        finally:
            self.start_closing()
            if self._stop is not None:
                await self._stop
            self._server = None

    def start_closing(self) -> None:
        """Hold new calls, then stop accepting, send GOAWAY and answer everything (at most
        once; the module's docstring)."""
        if self._server is None or self._stop is not None:
            return
        self.stopping.set()
        self.calls.gate.close()
        self._stop = asyncio.get_running_loop().create_task(
            self._close(self._server), name="grpc-stop"
        )

    async def _close(self, server: grpc.aio.Server) -> None:
        grace = self.core.settings.graceful_shutdown_seconds
        gate = self.calls.gate
        started = time.monotonic()
        quiet = await gate.quiet(QUIET_SECONDS, min(HOLD_SECONDS, grace))
        stopping = asyncio.get_running_loop().create_task(server.stop(grace))
        # stop()'s first step (the listener closes, GOAWAY goes out) runs before this one
        # resumes: tasks start in the order they were scheduled.
        await asyncio.sleep(0)
        gate.open()
        await stopping
        logger.info(
            "gRPC stopped in %.2fs (%d calls held until the GOAWAY%s)",
            time.monotonic() - started,
            gate.held,
            "" if quiet else "; calls kept arriving",
        )

    def _build_server(self) -> grpc.aio.Server:
        """The server with every service registered, from the published descriptors."""
        # Deferred: these import TensorFlow's protobuf modules, loaded by now with the model.
        from app.protocols.grpc import health, open_inference, tfserving

        max_message = self.core.settings.max_body_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_message),
                ("grpc.so_reuseport", 1),
            ]
        )
        services = [
            *tfserving.services(self),
            *open_inference.services(self),
        ]
        handlers = [self.calls.service_handler(service, methods) for service, methods in services]
        served = [service for service, _ in services]
        health_service, health_methods = health.service(self, [s.full_name for s in served])
        handlers.append(self.calls.service_handler(health_service, health_methods))
        server.add_generic_rpc_handlers(handlers)
        health.enable_reflection(server, [*served, health_service])
        return server
