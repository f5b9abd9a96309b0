"""One pure-ASGI middleware for what every request needs: a body limit and metrics.

Pure ASGI rather than ``BaseHTTPMiddleware`` because it sits on the hot path: it adds two
small closures per request and never copies the body. It also is the last line of defence:
an unexpected exception becomes the documented JSON 500 without a traceback in the logs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PayloadTooLargeError, ServiceError
from app.http.errors import ErrorRenderer
from app.metrics import ServiceMetrics

logger = logging.getLogger(__name__)

_UNMATCHED_ROUTE = "unmatched"  # keeps label cardinality bounded for scanners' random paths


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
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        metrics = self.metrics
        metrics.request_started()
        status = 500
        response_started = False

        async def send_recording_status(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
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
            metrics.request_finished(self._route_label(scope), scope["method"], status, started)

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


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
