"""The one HTTP error renderer, and the exception handlers that route every error through it.

Every error leaves as ``{"error": {"type": "...", "message": "..."}}`` with the status and
headers its ``app.core.errors`` class declares, whether it was raised by our code, by FastAPI's
request validation or by Starlette's routing, unless the request's path belongs to a protocol
family that declared its own ``ErrorShape`` (TF Serving and the Open Inference Protocol answer
``{"error": "<message>"}``). Each app has its own ``ErrorRenderer`` holding the shapes its
adapters declared, so nothing is registered at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, NamedTuple

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.core.errors import (
    BadRequestError,
    InvalidInputError,
    MethodNotAllowedError,
    NotFoundError,
    NotReadyError,
    OtherHTTPError,
    OverloadedError,
    PayloadTooLargeError,
    ServiceError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)

JSON = "application/json"


class ErrorShape(NamedTuple):
    """A protocol family's error body under ``path_prefix``: ``render(error, status)`` gives
    the (status, body) to send instead of ours (a protocol may use another status)."""

    path_prefix: str
    render: Callable[[ServiceError, int], tuple[int, bytes]]


class ErrorDetail(BaseModel):
    type: str = Field(description="Machine-readable error type, e.g. 'invalid_input'.")
    message: str = Field(description="Human-readable explanation; never echoes input text.")


class ErrorResponse(BaseModel):
    """The one error shape every failing request gets."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"error": {"type": "invalid_input", "message": "text: Field required"}}]
        }
    )

    error: ErrorDetail


def error_body(error: ServiceError) -> bytes:
    """The documented JSON body of ``error``."""
    return orjson.dumps({"error": {"type": error.error_type, "message": error.message}})


def error_response(
    error: ServiceError,
    *,
    status_code: int | None = None,
    headers: Mapping[str, str] | None = None,
    close: bool = False,
    shape: ErrorShape | None = None,
) -> Response:
    """``error`` as a Response: the documented shape (or ``shape``), the error's status and headers.

    ``close`` asks the client to drop the connection (used when the request body was never
    read). Every 413 closes it too: after a body over the limit the rest of that body (chunked
    or not) is still on the wire, and reading it to reach the next request is what the limit
    refuses.
    """
    status = status_code or error.status_code
    all_headers = {**error.headers, **(headers or {})}
    if close or status == PayloadTooLargeError.status_code:
        all_headers["Connection"] = "close"
    if shape is None:
        body = error_body(error)
    else:
        status, body = shape.render(error, status)
    return Response(body, status_code=status, media_type=JSON, headers=all_headers or None)


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


class ErrorRenderer:
    """One app's error rendering: its protocol families' shapes, chosen by request path."""

    def __init__(self, shapes: Sequence[ErrorShape]) -> None:
        self._shapes = tuple(shapes)
        self._schema_names: frozenset[str] | None = None  # the app's schema field names

    def shape_for(self, path: str) -> ErrorShape | None:
        """The family shape for ``path`` (the prefix itself or anything below it), if any."""
        for shape in self._shapes:
            prefix = shape.path_prefix
            if path == prefix or path.startswith(prefix + "/"):
                return shape
        return None

    def response(
        self,
        error: ServiceError,
        path: str,
        *,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
        close: bool = False,
    ) -> Response:
        """``error`` rendered as the family of ``path`` renders it (the documented shape else)."""
        return error_response(
            error,
            status_code=status_code,
            headers=headers,
            close=close,
            shape=self.shape_for(path),
        )

    def install(self, app: FastAPI) -> None:
        """Route every error the framework can raise through this renderer."""
        app.add_exception_handler(ServiceError, self._service_error)
        app.add_exception_handler(RequestValidationError, self._validation_error)
        app.add_exception_handler(StarletteHTTPException, self._http_exception)

    def _schema_field_names(self, app: FastAPI) -> frozenset[str]:
        """Every property name the app's OpenAPI schema defines (computed once)."""
        if self._schema_names is None:
            found: set[str] = set()
            _collect_property_names(app.openapi(), found)
            self._schema_names = frozenset(found)
        return self._schema_names

    async def _service_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return self.response(exc, request.scope["path"])

    async def _validation_error(self, request: Request, exc: Exception) -> Response:
        """FastAPI's request validation errors (bad JSON, types, limits) as invalid input."""
        assert isinstance(exc, RequestValidationError)
        message = describe_validation_errors(exc.errors(), self._schema_field_names(request.app))
        return self.response(InvalidInputError(message), request.scope["path"])

    async def _http_exception(self, request: Request, exc: Exception) -> Response:
        """Starlette's HTTP errors (unknown route, wrong method, body limit)."""
        assert isinstance(exc, StarletteHTTPException)
        error_class = _FRAMEWORK_ERRORS.get(exc.status_code, OtherHTTPError)
        message = exc.detail if isinstance(exc.detail, str) else None
        return self.response(
            error_class(message),
            request.scope["path"],
            status_code=exc.status_code,
            headers=exc.headers,
        )
