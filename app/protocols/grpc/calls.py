"""What every gRPC method shares: the API key, errors as status codes, metrics, access log,
and the gate that holds new calls while the server is about to stop (``CallGate``).

A method is an ``async def (request, context) -> response`` over the scoring core, registered
from its service's published descriptor (``service_handler``): the request arrives as bytes
and is parsed here, so a message that is not valid protobuf is INVALID_ARGUMENT rather than
grpc's own INTERNAL. A ``ServiceError`` becomes its declared status code and message
(``app.core.errors``: one table for REST and gRPC); anything else is INTERNAL with a generic
message, logged by type only, so no client text reaches a log or a reply. A call's request
metrics carry the model version that answered it (``answered_by``), as REST's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, NamedTuple

import grpc
from google.protobuf import message_factory
from google.protobuf.message import DecodeError, Message

from app.core.auth import ApiKeyCheck
from app.core.batcher import REQUEST_PROTOCOL
from app.core.errors import InvalidInputError, ServiceError
from app.metrics import ServiceMetrics

if TYPE_CHECKING:
    from app.core.predictor import Predictor

logger = logging.getLogger(__name__)
# With SENTIMENT_ACCESS_LOG on, one line per call beside uvicorn's lines for REST requests:
# client, "gRPC /package.Service/Method", status code name (never a request's content).
access_logger = logging.getLogger("app.grpc.access")

Context = grpc.aio.ServicerContext[Any, Any]
UnaryHandler = Callable[[Any, Context], Awaitable[Message]]
StreamHandler = Callable[[Any, Context], AsyncIterator[Message]]


# A service's published descriptor (google.protobuf's ServiceDescriptor; the C and Python
# implementations have different classes, so it is typed loosely).
ServiceDescriptor = Any


class Method(NamedTuple):
    """One method of a service: its implementation and whether it needs the API key."""

    handler: UnaryHandler | StreamHandler
    guarded: bool = True  # health and liveness stay open, like /healthz and /readyz


Service = tuple[ServiceDescriptor, dict[str, Method]]
"""A service to register: its descriptor and its methods by name."""

# The version that answered the running call ("" until one did): set by the method as it
# answers, read by the call's metrics, as REST's metrics read the X-Model-Version header.
_ANSWERING_VERSION: ContextVar[str] = ContextVar("grpc_answering_version", default="")


def answered_by(predictor: Predictor) -> None:
    """The running call is answered by ``predictor``: its request metrics carry that version.

    Called as a method returns an answer a version produced (never for an error), where REST
    names the version in the ``X-Model-Version`` header.
    """
    _ANSWERING_VERSION.set(predictor.version_label)


class CallGate:
    """Counts the calls that arrive and, while closed, holds them until it opens again.

    grpc's ``server.stop()`` ends every call grpc received but the application had not yet
    taken (its pending queue, and calls arriving until the client reads the GOAWAY) with
    CANCELLED (grpc/grpc#41785), a status a client cannot safely retry. Holding new calls
    instead of answering them makes the clients go quiet: a client waits for the answer to
    the call it sent, so once every client's call is held no call is pending or on its way,
    and the server can stop (``GrpcProtocol``). The held calls are answered once the
    GOAWAY is out, so the clients' next calls go to a new connection.
    """

    def __init__(self) -> None:
        self.arrivals = 0  # calls that reached the application, ever
        self.held = 0  # calls that waited at the closed gate
        self._opened: asyncio.Event | None = None  # None: open

    def close(self) -> None:
        """Hold every call that arrives from now on."""
        if self._opened is None:
            self._opened = asyncio.Event()

    def open(self) -> None:
        """Let the held calls (and any later ones) through."""
        if self._opened is not None:
            self._opened.set()

    async def enter(self) -> None:
        """A call arrives: count it, and wait while the gate is closed."""
        self.arrivals += 1
        opened = self._opened
        if opened is not None and not opened.is_set():
            self.held += 1
            await opened.wait()

    async def quiet(self, interval: float, limit: float) -> bool:
        """Wait until no call arrived for ``interval`` seconds (True), or ``limit`` passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        seen = -1
        while seen != self.arrivals:
            if loop.time() >= deadline:
                return False
            seen = self.arrivals
            await asyncio.sleep(interval)
        return True


class CallRunner:
    """Runs every call of one app: key check, parsing, status codes, metrics, access log."""

    def __init__(self, auth: ApiKeyCheck, metrics: ServiceMetrics, access_log: bool) -> None:
        self._auth = auth
        self._metrics = metrics
        self._access_log = access_log
        self.gate = CallGate()

    def service_handler(
        self, service: ServiceDescriptor, methods: Mapping[str, Method]
    ) -> grpc.GenericRpcHandler:
        """The handler for ``service``'s methods (a method not given answers UNIMPLEMENTED)."""
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for method in service.methods:
            implementation = methods.get(method.name)
            if implementation is None:
                continue
            full_name = f"/{service.full_name}/{method.name}"
            request_class = message_factory.GetMessageClass(method.input_type)
            serialize = message_factory.GetMessageClass(method.output_type).SerializeToString
            if method.server_streaming:
                handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                    self._stream(full_name, request_class, implementation),
                    response_serializer=serialize,
                )
            else:
                handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                    self._unary(full_name, request_class, implementation),
                    response_serializer=serialize,
                )
        return grpc.method_handlers_generic_handler(service.full_name, handlers)

    def _unary(
        self, full_name: str, request_class: type[Message], method: Method
    ) -> Callable[[bytes, Context], Awaitable[Message]]:
        handler: UnaryHandler = method.handler  # type: ignore[assignment]

        async def call(raw: bytes, context: Context) -> Message:
            async with self._running(full_name, context):
                request = self._admit(raw, request_class, method.guarded, context)
                return await handler(request, context)
            raise AssertionError("unreachable: abort raises")  # pragma: no cover

        return call

    def _stream(
        self, full_name: str, request_class: type[Message], method: Method
    ) -> Callable[[bytes, Context], AsyncIterator[Message]]:
        handler: StreamHandler = method.handler  # type: ignore[assignment]

        async def call(raw: bytes, context: Context) -> AsyncIterator[Message]:
            async with self._running(full_name, context):
                request = self._admit(raw, request_class, method.guarded, context)
                async for response in handler(request, context):
                    yield response

        return call

    @contextlib.asynccontextmanager
    async def _running(self, full_name: str, context: Context) -> AsyncIterator[None]:
        """One call from its arrival to its status: through the gate, counted in flight, its
        errors as status codes, then its metrics (with the version that answered, if one
        did) and its access log line."""
        await self.gate.enter()
        # This call's own context: its input metrics say gRPC, and no version answered yet.
        REQUEST_PROTOCOL.set("grpc")
        _ANSWERING_VERSION.set("")
        started = self._started()
        code = grpc.StatusCode.OK
        try:
            yield
        except ServiceError as error:
            code = grpc.StatusCode[error.grpc_status]
            await context.abort(code, error.message)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            code = grpc.StatusCode.INTERNAL
            logger.error("unhandled %s in %s", type(exc).__name__, full_name)
            await context.abort(code, ServiceError.default_message)
        finally:
            self._finished(full_name, code, started, context)

    def _admit(
        self, raw: bytes, request_class: type[Message], guarded: bool, context: Context
    ) -> Message:
        """The parsed request, once its metadata presents the key (when one is set)."""
        if guarded and self._auth.required:
            api_key = authorization = None
            for key, value in context.invocation_metadata() or ():
                if key == "x-api-key" and isinstance(value, str):
                    api_key = value
                elif key == "authorization" and isinstance(value, str):
                    authorization = value
            self._auth.check_headers(api_key, authorization)
        try:
            return request_class.FromString(raw)
        except DecodeError:
            raise InvalidInputError(
                f"The request is not a valid {request_class.DESCRIPTOR.full_name} message."
            ) from None

    def _started(self) -> float:
        self._metrics.request_started()
        return time.perf_counter()

    def _finished(
        self, full_name: str, code: grpc.StatusCode, started: float, context: Context
    ) -> None:
        self._metrics.grpc_call_finished(full_name, code.name, started, _ANSWERING_VERSION.get())
        if self._access_log:
            peer = context.peer().partition(":")[2] or context.peer()
            access_logger.info('%s - "gRPC %s" %s', peer, full_name, code.name)
