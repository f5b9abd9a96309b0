"""The service's one error hierarchy and the one set of handlers that render it.

Every error leaves the service as ``{"error": {"type": "...", "message": "..."}}`` with the
matching status, whether it was raised by our code, by FastAPI's request validation or by
Starlette's routing. Messages are written by us and never include the client's text, so
review text can't leak into responses or logs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base of all errors the service reports; carries its HTTP status and machine type."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Internal error."
    headers: ClassVar[Mapping[str, str] | None] = None

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidInputError(ServiceError):
    """The request is well-formed HTTP but its content is not acceptable."""

    status_code = 422
    error_type = "invalid_input"
    default_message = "The request body is invalid."


class PayloadTooLargeError(ServiceError):
    """The body, or the number of texts in it, exceeds a configured limit."""

    status_code = 413
    error_type = "payload_too_large"
    default_message = "The request body is too large."


class OverloadedError(ServiceError):
    """The prediction queue is full; the client should back off and retry."""

    status_code = 429
    error_type = "overloaded"
    default_message = "The service is overloaded, retry later."
    headers: ClassVar[Mapping[str, str] | None] = {"Retry-After": "1"}


class NotReadyError(ServiceError):
    """No verified, warm model is live yet (or the service is shutting down)."""

    status_code = 503
    error_type = "not_ready"
    default_message = "No model is ready to serve."
    headers: ClassVar[Mapping[str, str] | None] = {"Retry-After": "1"}


class InferenceError(ServiceError):
    """The model call for a batch failed; only that batch's requests see this."""

    status_code = 503
    error_type = "inference_failed"
    default_message = "The model failed to score this request, retry later."
    headers: ClassVar[Mapping[str, str] | None] = {"Retry-After": "1"}


class UnauthorizedError(ServiceError):
    """An API key is configured and the request did not present it."""

    status_code = 401
    error_type = "unauthorized"
    default_message = "A valid API key is required."
    headers: ClassVar[Mapping[str, str] | None] = {"WWW-Authenticate": "Bearer"}


class ModelNotFoundError(ServiceError):
    """The TF Serving compatible route named a model this service does not serve."""

    status_code = 404
    error_type = "model_not_found"
    default_message = "No such model."


class BrokenModelError(ServiceError):
    """A model version on disk failed to load or verify; it is never served."""

    status_code = 503
    error_type = "broken_model"
    default_message = "The model version is broken."


_HTTP_ERROR_TYPES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "overloaded",
    503: "not_ready",
}


def error_body(error_type: str, message: str) -> bytes:
    """Serialize the single documented error shape."""
    return orjson.dumps({"error": {"type": error_type, "message": message}})


def error_response(
    status_code: int, error_type: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """Build the JSON response for an error."""
    return Response(
        error_body(error_type, message),
        status_code=status_code,
        media_type="application/json",
        headers=dict(headers) if headers else None,
    )


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """Summarize pydantic errors by location and reason, deliberately dropping the input."""
    parts = []
    for error in errors[:5]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        reason = str(error.get("msg", "invalid value"))
        parts.append(f"{location or 'body'}: {reason}")
    if len(errors) > 5:
        parts.append(f"... and {len(errors) - 5} more")
    return "; ".join(parts)


async def handle_service_error(request: Request, exc: Exception) -> Response:
    """Render our own errors."""
    assert isinstance(exc, ServiceError)
    return error_response(exc.status_code, exc.error_type, exc.message, exc.headers)


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    """Render FastAPI's request validation errors (bad JSON, types, limits) as 422."""
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_input", describe_validation_errors(exc.errors()))


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Render Starlette's HTTP errors (unknown route, wrong method, body limit)."""
    assert isinstance(exc, StarletteHTTPException)
    error_type = _HTTP_ERROR_TYPES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "HTTP error."
    return error_response(exc.status_code, error_type, message, exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error the framework can raise through the one JSON shape."""
    app.add_exception_handler(ServiceError, handle_service_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
