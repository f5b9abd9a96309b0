"""The service's one error hierarchy: every error a client can get, and what it means on the wire.

Each error class states once, in its class line, its HTTP status, its machine-readable ``type``,
its default message and its gRPC status code; everything else (the HTTP renderer and exception
handlers, the middleware's early answers, the connection guards, the OpenAPI description, the
benchmark's ceiling app, a gRPC adapter) asks the class. Messages are written by us and never
include the client's text, so review text can't leak into responses or logs.

No web framework here: rendering is ``app.http.errors`` (and, per protocol family, the
adapters' error shapes).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

GrpcStatus = Literal[
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "RESOURCE_EXHAUSTED",
    "UNAUTHENTICATED",
    "UNAVAILABLE",
    "UNIMPLEMENTED",
    "DEADLINE_EXCEEDED",
    "INTERNAL",
]
"""A ``grpc.StatusCode`` member's name (``grpc.StatusCode[name]``), without importing grpc."""

_RETRY = {"Retry-After": "1"}


class ServiceError(Exception):
    """Base of all errors the service reports; subclasses declare what they are in their class line.

    A subclass that omits a keyword inherits its parent's value; ``documented=False`` keeps a
    type out of the documented list (a refinement of its parent, or a framework fallback).
    """

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Internal error."
    grpc_status: ClassVar[GrpcStatus] = "INTERNAL"
    headers: ClassVar[Mapping[str, str]] = {}
    documented: ClassVar[bool] = True

    def __init_subclass__(
        cls,
        *,
        status: int | None = None,
        error_type: str | None = None,
        message: str | None = None,
        grpc_status: GrpcStatus | None = None,
        headers: Mapping[str, str] | None = None,
        documented: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status_code = status
        if error_type is not None:
            cls.error_type = error_type
        if message is not None:
            cls.default_message = message
        if grpc_status is not None:
            cls.grpc_status = grpc_status
        if headers is not None:
            cls.headers = dict(headers)
        cls.documented = documented

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidInputError(
    ServiceError,
    status=422,
    error_type="invalid_input",
    message="The request body is invalid.",
    grpc_status="INVALID_ARGUMENT",
):
    """The request is well-formed HTTP but its content is not acceptable."""


class PayloadTooLargeError(
    ServiceError,
    status=413,
    error_type="payload_too_large",
    message="The request body is too large.",
    grpc_status="RESOURCE_EXHAUSTED",
):
    """The body, or the number of texts in it, exceeds a configured limit."""


class OverloadedError(
    ServiceError,
    status=429,
    error_type="overloaded",
    message="The service is overloaded, retry later.",
    grpc_status="RESOURCE_EXHAUSTED",
    headers=_RETRY,
):
    """The prediction queue is full; the client should back off and retry."""


class NotReadyError(
    ServiceError,
    status=503,
    error_type="not_ready",
    message="No model is ready to serve.",
    grpc_status="UNAVAILABLE",
    headers=_RETRY,
):
    """No verified, warm model is live yet (or the service is shutting down)."""


class InferenceError(
    ServiceError,
    status=503,
    error_type="inference_failed",
    message="The model failed to score this request, retry later.",
    grpc_status="UNAVAILABLE",
    headers=_RETRY,
):
    """The model call for a batch failed; only that batch's requests see this."""


class BrokenModelError(
    ServiceError,
    status=503,
    error_type="broken_model",
    message="The model version is broken.",
    grpc_status="UNAVAILABLE",
):
    """A model version on disk failed to load or verify; it is never served."""


class RequestHeadTooLargeError(
    ServiceError,
    status=431,
    error_type="request_head_too_large",
    message="The request line and headers are too large.",
    grpc_status="RESOURCE_EXHAUSTED",
):
    """The request head is over ``SENTIMENT_MAX_REQUEST_HEAD_BYTES`` (answered, then closed)."""


class RequestTimeoutError(
    ServiceError,
    status=408,
    error_type="request_timeout",
    message="The request did not arrive in time.",
    grpc_status="DEADLINE_EXCEEDED",
):
    """The request head took longer than ``SENTIMENT_REQUEST_HEAD_TIMEOUT_SECONDS``, or its
    body longer than ``SENTIMENT_REQUEST_BODY_TIMEOUT_SECONDS`` (answered, then closed)."""


class UnauthorizedError(
    ServiceError,
    status=401,
    error_type="unauthorized",
    message="A valid API key is required.",
    grpc_status="UNAUTHENTICATED",
    headers={"WWW-Authenticate": "Bearer"},
):
    """An API key is configured and the request did not present it."""


class ModelNotFoundError(
    ServiceError,
    status=404,
    error_type="model_not_found",
    message="No such model.",
    grpc_status="NOT_FOUND",
):
    """The request named a model, version or label this service does not serve."""


class UnknownModelError(ModelNotFoundError, documented=False):
    """The model name is not the one served (the client's name is never repeated)."""


class UnknownVersionError(ModelNotFoundError, message="No such model version.", documented=False):
    """The version asked for is not loaded; ``version`` says which (a number, safe to repeat)."""

    def __init__(self, version: int, message: str | None = None) -> None:
        self.version = version
        super().__init__(message)


class UnknownLabelError(ModelNotFoundError, message="No such version label.", documented=False):
    """The version label asked for names no loaded version (the label is never repeated)."""


class ExplainUnavailableError(
    ServiceError,
    status=501,
    error_type="explain_unavailable",
    message="The live model version was exported without the 'explain' signature.",
    grpc_status="UNIMPLEMENTED",
):
    """An explanation from a version exported before explanations existed (versions 1 and 2).

    501, not 500: nothing failed, this version cannot do it; a newer version can.
    """


class NotFoundError(
    ServiceError,
    status=404,
    error_type="not_found",
    message="Not Found",
    grpc_status="UNIMPLEMENTED",
):
    """No route has this path (raised by Starlette's router)."""


class MethodNotAllowedError(
    ServiceError,
    status=405,
    error_type="method_not_allowed",
    message="Method Not Allowed",
    grpc_status="UNIMPLEMENTED",
):
    """The route exists but not for this method (raised by Starlette's router)."""


class BadRequestError(
    ServiceError,
    status=400,
    error_type="bad_request",
    message="Bad Request",
    grpc_status="INVALID_ARGUMENT",
):
    """The framework could not make sense of the request."""


class UnsupportedMediaTypeError(
    ServiceError,
    status=415,
    error_type="unsupported_media_type",
    message="Unsupported Media Type",
    grpc_status="INVALID_ARGUMENT",
):
    """The framework refused the request's content type."""


class OtherHTTPError(
    ServiceError, status=500, error_type="http_error", message="HTTP error.", documented=False
):
    """A framework HTTP error of a status none of our types has (rendered with that status)."""


def _descendants(cls: type[ServiceError]) -> Iterator[type[ServiceError]]:
    for subclass in cls.__subclasses__():
        yield subclass
        yield from _descendants(subclass)


def documented_error_types() -> list[type[ServiceError]]:
    """Every documented error type, ``ServiceError`` first, then in definition order."""
    every: list[type[ServiceError]] = [ServiceError, *_descendants(ServiceError)]
    return [cls for cls in every if cls.documented]


def describe_error_types() -> str:
    """The Markdown list of every documented error type and its status (the API description)."""
    return ", ".join(
        f"`{cls.error_type}` ({cls.status_code})"
        for cls in sorted(documented_error_types(), key=lambda cls: cls.status_code)
    )
