"""One pure-ASGI middleware for what every request needs: a body limit and metrics.

Pure ASGI rather than ``BaseHTTPMiddleware`` because it sits on the hot path: it adds two
small closures per request and never copies the body. It also is the last line of defence:
an unexpected exception becomes the documented JSON 500 without a traceback in the logs.

The request metrics carry the model version that answered, read from the ``X-Model-Version``
header every model answer has: the adapters already name it there, so counting it costs the
middleware a look at the response's few headers and the routes nothing.

It also sees the app's lifespan, and words a start-up stopped by the configuration
(``ConfigurationError``) as that error's own message instead of Starlette's traceback: the
operator needs the message, and the traceback only buries it.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PayloadTooLargeError, ServiceError
from app.http.errors import ErrorRenderer
from app.metrics import ServiceMetrics
from app.settings import ConfigurationError

logger = logging.getLogger(__name__)

_UNMATCHED_ROUTE = "unmatched"  # keeps label cardinality bounded for scanners' random paths
MODEL_VERSION_HEADER = "X-Model-Version"
"""The response header naming the version that produced a model answer."""
_MODEL_VERSION_HEADER = MODEL_VERSION_HEADER.lower().encode("latin-1")  # as ASGI spells it


class ServiceMiddleware:
    """Rejects oversized bodies before they are parsed and records request metrics."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ServiceMetrics,
        max_body_bytes: int,
        errors: ErrorRenderer,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.errors = errors
        self._labels_by_endpoint: dict[Any, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                send = _configuration_errors_told_plainly(send)
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        metrics = self.metrics
        metrics.request_started()
        status = 500
        response_started = False
        version = ""

        async def send_recording_status(message: Message) -> None:
            nonlocal status, response_started, version
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                for name, value in message.get("headers", ()):
                    if name == _MODEL_VERSION_HEADER:
                        version = value.decode("latin-1")
                        break
            await send(message)

        try:
            declared_length = _content_length(scope)
            if declared_length is not None and declared_length > self.max_body_bytes:
                await self._send_error(
                    PayloadTooLargeError(), scope, receive, send_recording_status
                )
                return
            if declared_length is None and scope["method"] in ("POST", "PUT", "PATCH"):
                receive = self._limit_streamed_body(receive)
            await self.app(scope, receive, send_recording_status)
        except HTTPException as exc:
            if exc.status_code != 413 or response_started:
                raise
            await self._send_error(PayloadTooLargeError(), scope, receive, send_recording_status)
        except Exception as exc:
            logger.error(
                "unhandled %s on %s %s", type(exc).__name__, scope["method"], scope["path"]
            )
            if not response_started:
                await self._send_error(ServiceError(), scope, receive, send_recording_status)
        finally:
            route = self._route_label(scope)
            metrics.request_finished(route, scope["method"], status, started, version)

    async def _send_error(
        self, error: ServiceError, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Answer with ``error`` and close: the request body may be unread (or half read)."""
        await self.errors.response(error, scope["path"], close=True)(scope, receive, send)

    def _route_label(self, scope: Scope) -> str:
        """The route template that matched, for metrics; "unmatched" only when none did.

        FastAPI's API routes put themselves in ``scope["route"]``; Starlette's plain routes
        (those FastAPI adds for /openapi.json, /docs, /redoc) only leave their ``endpoint``,
        which is looked up among the app's routes once per endpoint (a handful exist).
        """
        route = scope.get("route")
        if route is not None:
            return str(route.path)
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return _UNMATCHED_ROUTE
        label = self._labels_by_endpoint.get(endpoint)
        if label is None:
            paths = [
                str(candidate.path)
                for candidate in getattr(scope.get("app"), "routes", ())
                if getattr(candidate, "endpoint", None) is endpoint and hasattr(candidate, "path")
            ]
            label = paths[0] if paths else _UNMATCHED_ROUTE
            self._labels_by_endpoint[endpoint] = label
        return label

    def _limit_streamed_body(self, receive: Receive) -> Receive:
        """Count a chunked body as it streams in; stop reading once it is over the limit."""
        received = 0
        limit = self.max_body_bytes

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises HTTPException from body reading; the error handler
                    # (or this middleware) renders it as the 413 error shape.
                    raise HTTPException(413, PayloadTooLargeError.default_message)
            return message

        return receive_limited


def _configuration_errors_told_plainly(send: Send) -> Send:
    """``send`` for the lifespan, with a ConfigurationError's start-up failure reported as its
    message alone (Starlette reports it from inside its ``except``, so the error is at hand)."""

    async def send_plainly(message: Message) -> None:
        if message["type"] == "lifespan.startup.failed":
            error = sys.exc_info()[1]
            if isinstance(error, ConfigurationError):
                message = {**message, "message": f"configuration error: {error}"}
        await send(message)

    return send_plainly


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
