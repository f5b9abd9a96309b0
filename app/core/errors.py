"""The service's one error hierarchy and the one renderer every error leaves through.

Each error class states its HTTP status, its machine-readable ``type`` and its default message
once, in its class line; everything else (the exception handlers, the middleware's early
answers, ``/readyz``, the OpenAPI description, the benchmark's ceiling app) asks the class.
Every error leaves the service as ``{"error": {"type": "...", "message": "..."}}``, whether it
was raised by our code, by FastAPI's request validation or by Starlette's routing. Messages are
written by us and never include the client's text, so review text can't leak into responses
or logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

logger = logging.getLogger(__name__)

_RETRY = {"Retry-After": "1"}


class ServiceError(Exception):
    """Base of all errors the service reports; subclasses declare status, type and message."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Internal error."
    headers: ClassVar[Mapping[str, str]] = {}
    # Every concrete error type in definition order: the documentation is derived from it.
    registered: ClassVar[list[type[ServiceError]]] = []

    def __init_subclass__(
        cls,
        *,
        status: int,
        error_type: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        documented: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.status_code = status
        cls.error_type = error_type
        cls.default_message = message
        cls.headers = dict(headers or {})
        if documented:
            ServiceError.registered.append(cls)

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


ServiceError.registered.append(ServiceError)


class InvalidInputError(
    ServiceError, status=422, error_type="invalid_input", message="The request body is invalid."
):
    """The request is well-formed HTTP but its content is not acceptable."""


class PayloadTooLargeError(
    ServiceError,
    status=413,
    error_type="payload_too_large",
    message="The request body is too large.",
):
    """The body, or the number of texts in it, exceeds a configured limit."""


class OverloadedError(
    ServiceError,
    status=429,
    error_type="overloaded",
    message="The service is overloaded, retry later.",
    headers=_RETRY,
):
    """The prediction queue is full; the client should back off and retry."""


class NotReadyError(
    ServiceError,
    status=503,
    error_type="not_ready",
    message="No model is ready to serve.",
    headers=_RETRY,
):
    """No verified, warm model is live yet (or the service is shutting down)."""


class InferenceError(
    ServiceError,
    status=503,
    error_type="inference_failed",
    message="The model failed to score this request, retry later.",
    headers=_RETRY,
):
    """The model call for a batch failed; only that batch's requests see this."""


class BrokenModelError(
    ServiceError, status=503, error_type="broken_model", message="The model version is broken."
):
    """A model version on disk failed to load or verify; it is never served."""


class RequestHeadTooLargeError(
    ServiceError,
    status=431,
    error_type="request_head_too_large",
    message="The request line and headers are too large.",
):
    """The request head is over ``SENTIMENT_MAX_REQUEST_HEAD_BYTES`` (answered, then closed)."""


class RequestTimeoutError(
    ServiceError,
    status=408,
    error_type="request_timeout",
    message="The request did not arrive in time.",
):
    """The request head took longer than ``SENTIMENT_REQUEST_HEAD_TIMEOUT_SECONDS``, or its
    body longer than ``SENTIMENT_REQUEST_BODY_TIMEOUT_SECONDS`` (answered, then closed)."""


class UnauthorizedError(
    ServiceError,
    status=401,
    error_type="unauthorized",
    message="A valid API key is required.",
    headers={"WWW-Authenticate": "Bearer"},
):
    """An API key is configured and the request did not present it."""


class ModelNotFoundError(
    ServiceError, status=404, error_type="model_not_found", message="No such model."
):
    """The TF Serving compatible route named a model this service does not serve."""


class ExplainUnavailableError(
    ServiceError,
    status=501,
    error_type="explain_unavailable",
    message="The live model version was exported without the 'explain' signature.",
):
    """/v1/explain on a version exported before explanations existed (versions 1 and 2).

    501, not 500: nothing failed, this version cannot do it; a newer version can.
    """


class NotFoundError(ServiceError, status=404, error_type="not_found", message="Not Found"):
    """No route has this path (raised by Starlette's router)."""


class MethodNotAllowedError(
    ServiceError, status=405, error_type="method_not_allowed", message="Method Not Allowed"
):
    """The route exists but not for this method (raised by Starlette's router)."""


class BadRequestError(ServiceError, status=400, error_type="bad_request", message="Bad Request"):
    """The framework could not make sense of the request."""


class UnsupportedMediaTypeError(
    ServiceError,
    status=415,
    error_type="unsupported_media_type",
    message="Unsupported Media Type",
):
    """The framework refused the request's content type."""


class OtherHTTPError(
    ServiceError, status=500, error_type="http_error", message="HTTP error.", documented=False
):
    """A framework HTTP error of a status none of our types has (rendered with that status)."""


# Which of our types a framework HTTP error of a given status is reported as.
_FRAMEWORK_ERRORS: Mapping[int, type[ServiceError]] = {
    cls.status_code: cls
    for cls in (
        BadRequestError,
        UnauthorizedError,
        NotFoundError,
        MethodNotAllowedError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
        InvalidInputError,
        OverloadedError,
        NotReadyError,
    )
}


def describe_error_types() -> str:
    """The Markdown list of every error type and its status, for the OpenAPI description."""
    return ", ".join(
        f"`{cls.error_type}` ({cls.status_code})"
        for cls in sorted(ServiceError.registered, key=lambda cls: cls.status_code)
    )


ErrorShape = Callable[[ServiceError, int], tuple[int, bytes]]
"""A route family's error body: (error, status we would send) -> (status, body)."""

# Route families that speak another protocol's error shape, by path prefix.
_FAMILY_SHAPES: list[tuple[str, ErrorShape]] = []


def register_error_shape(path_prefix: str, shape: ErrorShape) -> None:
    """Render errors on ``path_prefix`` and below in ``shape`` instead of ours.

    Used by the protocol routes (TF Serving REST under /v1/models, the Open Inference
    Protocol under /v2): their clients parse ``{"error": "<message>"}``. The errors are the
    same ServiceError types; only the body shape (and a protocol's status) differs, chosen
    from the request path so framework errors (unknown route, wrong method, body limit in
    the middleware) get it too.
    """
    if all(prefix != path_prefix for prefix, _ in _FAMILY_SHAPES):
        _FAMILY_SHAPES.append((path_prefix, shape))


def _shape_for(path: str) -> ErrorShape | None:
    for prefix, shape in _FAMILY_SHAPES:
        if path == prefix or path.startswith(prefix + "/"):
            return shape
    return None


def protocol_error_shape(error: ServiceError, status_code: int) -> tuple[int, bytes]:
    """``{"error": "<message>"}``: TF Serving's and the Open Inference Protocol's shape.

    Both answer invalid requests with 400 (gRPC INVALID_ARGUMENT), where we use 422.
    """
    status = 400 if status_code == InvalidInputError.status_code else status_code
    return status, orjson.dumps({"error": error.message})


class _ErrorResponse(Response):
    """Our error shape, switched to the route family's shape when it is sent."""

    def __init__(self, error: ServiceError, status_code: int, headers: Mapping[str, str]):
        self.error = error
        body = orjson.dumps({"error": {"type": error.error_type, "message": error.message}})
        super().__init__(
            body, status_code=status_code, media_type="application/json", headers=headers or None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        shape = _shape_for(scope.get("path", ""))
        if shape is not None:
            self.status_code, self.body = shape(self.error, self.status_code)
            self.headers["content-length"] = str(len(self.body))
        await super().__call__(scope, receive, send)


def error_response(
    error: ServiceError,
    *,
    status_code: int | None = None,
    headers: Mapping[str, str] | None = None,
    close: bool = False,
) -> Response:
    """The one renderer: the documented JSON shape with the error's status and headers.

    A Response is also an ASGI app, so the middleware sends it directly. ``close`` asks the
    client to drop the connection (used when the request body was never read). Every 413
    closes it too: after a body over the limit the rest of that body (chunked or not) is
    still on the wire, and reading it to reach the next request is what the limit refuses. Routes
    registered with ``register_error_shape`` get their protocol's shape instead.
    """
    all_headers = {**error.headers, **(headers or {})}
    if close or (status_code or error.status_code) == PayloadTooLargeError.status_code:
        all_headers["Connection"] = "close"
    return _ErrorResponse(error, status_code or error.status_code, all_headers)


# pydantic error types whose message quotes the input; they get a fixed reason instead.
_MESSAGES_WITH_INPUT = frozenset({"union_tag_invalid", "union_tag_not_found"})
_NAME_NOT_ECHOED = "(name not echoed)"


def describe_validation_errors(
    errors: Sequence[Any], known_names: Collection[str] = frozenset()
) -> str:
    """Summarize pydantic errors by location and reason, deliberately dropping the input.

    A location is a path of field names, list indexes and dict keys. Field names the schema
    defines (``known_names``) and indexes are shown; any other name was chosen by the client
    (an unknown field, a dict key) and is never repeated, so a client can't make the
    service (or a log) say what it wants. Pydantic's union-branch tags are dropped too.
    """
    parts = []
    for error in errors[:5]:
        location = []
        for part in error.get("loc", ()):
            if isinstance(part, int) or part in known_names:
                location.append(str(part))
        reason = str(error.get("msg", "invalid value"))
        error_type = error.get("type")
        if error_type == "extra_forbidden":
            reason = f"unknown field {_NAME_NOT_ECHOED}; {reason}"
        elif error_type in _MESSAGES_WITH_INPUT:
            reason = "does not match any expected variant"
        parts.append(f"{'.'.join(p for p in location if p != 'body') or 'body'}: {reason}")
    if len(errors) > 5:
        parts.append(f"... and {len(errors) - 5} more")
    return "; ".join(parts)


def schema_field_names(app: FastAPI) -> frozenset[str]:
    """Every property name the app's OpenAPI schema defines (computed once per app)."""
    names: frozenset[str] | None = getattr(app.state, "schema_field_names", None)
    if names is None:
        found: set[str] = set()
        _collect_property_names(app.openapi(), found)
        names = frozenset(found)
        app.state.schema_field_names = names
    return names


def _collect_property_names(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            found.update(str(name) for name in properties)
        for value in node.values():
            _collect_property_names(value, found)
    elif isinstance(node, list):
        for value in node:
            _collect_property_names(value, found)


async def handle_service_error(request: Request, exc: Exception) -> Response:
    """Render our own errors."""
    assert isinstance(exc, ServiceError)
    return error_response(exc)


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    """Render FastAPI's request validation errors (bad JSON, types, limits) as 422."""
    assert isinstance(exc, RequestValidationError)
    message = describe_validation_errors(exc.errors(), schema_field_names(request.app))
    return error_response(InvalidInputError(message))


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Render Starlette's HTTP errors (unknown route, wrong method, body limit)."""
    assert isinstance(exc, StarletteHTTPException)
    error_class = _FRAMEWORK_ERRORS.get(exc.status_code, OtherHTTPError)
    message = exc.detail if isinstance(exc.detail, str) else None
    return error_response(error_class(message), status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error the framework can raise through the one JSON shape."""
    app.add_exception_handler(ServiceError, handle_service_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
