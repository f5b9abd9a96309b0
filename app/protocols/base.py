"""What every protocol adapter shares: route table, JSON answers, error docs and error shapes.

An adapter is one protocol family over the app's ``ScoringCore``: it parses a request, calls
the core and renders the answer, nothing else. It declares, and ``create_app`` collects:

* ``routes()``: its HTTP routes (``RouteSpec``), registered in order on the app itself (an
  ``include_router`` would add a dispatch layer per request; the hot path comes first);
* ``error_shape``: how errors look under its path prefix, when not the documented shape;
* ``lifespan()``: what runs while the app runs, entered once the core serves and left before
  it stops (a gRPC server starts and stops there, on the app's event loop, with the app's core);
* ``describe(document)``: a last word on the app's OpenAPI document.

Routes are ``async def`` and only await the core, so no request costs a thread-pool hop, and
answers are serialized with orjson straight into a Response (the ``response_model``
declarations still document them); an answer a model version produced names it in the
``X-Model-Version`` header (``json_response(..., version=...)``), which the request metrics
read too. A model operation that protocols address by version (``/versions/{v}``,
``/labels/{l}``) is written once and served in each form (``versioned_routes``); which version
a choice reaches is the core's business (``ScoringCore.resolve``), so every protocol, REST or
gRPC, routes alike.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, NamedTuple

import orjson
from fastapi import Depends, FastAPI, Request, Security
from fastapi import Path as PathParam
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, Field
from starlette.responses import Response

from app.core.auth import ApiKeyCheck
from app.core.errors import (
    InvalidInputError,
    ModelNotFoundError,
    ServiceError,
    UnknownLabelError,
    UnknownModelError,
    UnknownVersionError,
)
from app.core.predictor import Predictor
from app.core.registry import DEFAULT_VERSION, VersionChoice
from app.core.scoring import ScoringCore
from app.core.texts import BLANK_MESSAGE, TEXT_PATTERN, is_blank
from app.http.errors import JSON, ErrorShape
from app.http.middleware import MODEL_VERSION_HEADER

Endpoint = Callable[..., Awaitable[Response]]
EXAMPLE_TEXT = "This movie was wonderful, I loved every minute of it."


def _reject_blank(text: str) -> str:
    if is_blank(text):
        raise ValueError(BLANK_MESSAGE)
    return text


# A text as every route's schema describes it: validated by the blank rule, and stated as
# TEXT_PATTERN, which means the same in any regex dialect (app.core.texts).
NonBlankText = Annotated[
    str,
    AfterValidator(_reject_blank),
    Field(min_length=1, json_schema_extra={"pattern": TEXT_PATTERN}),
]
VersionParam = Annotated[
    str, PathParam(pattern=r"^[0-9]{1,18}$", description="A model version (an integer).")
]
LabelParam = Annotated[
    str,
    PathParam(
        pattern=r"^[^/:]{1,64}$",
        description=(
            "A version label (SENTIMENT_MODEL_VERSION_LABELS); 'stable' always names the "
            "version unversioned requests get."
        ),
    ),
]
REQUEST_ID_HEADER = "x-request-id"
"""The client's request id: keeps a client on one side of the canary split."""


def json_response(content: Any, status_code: int = 200, version: str | None = None) -> Response:
    """``content`` as JSON, serialized by orjson; ``version``: the model version that produced
    it, named in the ``X-Model-Version`` header."""
    headers = None if version is None else {MODEL_VERSION_HEADER: version}
    return Response(
        orjson.dumps(content), status_code=status_code, media_type=JSON, headers=headers
    )


def flat_error_shape(error: ServiceError, status_code: int) -> tuple[int, bytes]:
    """``{"error": "<message>"}``: TF Serving's and the Open Inference Protocol's error shape.

    Both answer invalid requests with 400 (gRPC INVALID_ARGUMENT), where we use 422.
    """
    status = 400 if status_code == InvalidInputError.status_code else status_code
    return status, orjson.dumps({"error": error.message})


def error_docs(model: type[BaseModel], statuses: Iterable[int]) -> dict[int | str, Any]:
    """OpenAPI ``responses`` for these error statuses, in the family's error shape."""
    return {status: {"model": model} for status in statuses}


class RouteSpec(NamedTuple):
    """One HTTP route: where, what handles it, and what OpenAPI says about it."""

    path: str
    endpoint: Endpoint
    method: str
    response_model: Any
    responses: Mapping[int | str, Any]
    summary: str
    tag: str
    guarded: bool = True  # behind the API key, when one is set
    name: str | None = None  # the operation's name (else the endpoint's)
    description: str | None = None  # else the endpoint's docstring
    options: Mapping[str, Any] = {}  # more add_api_route keywords (response_class, ...)


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


def api_key_guard(auth: ApiKeyCheck) -> list[Any] | None:
    """The dependency guarding routes when a key is set: ``X-API-Key: <key>`` or
    ``Authorization: Bearer <key>`` (a thin wrapper over ``ApiKeyCheck``)."""
    if not auth.required:
        return None

    async def require_api_key(
        api_key: str | None = Security(_api_key_header),
        bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
    ) -> None:
        auth.check(api_key if api_key is not None else (bearer.credentials if bearer else None))

    return [Depends(require_api_key)]


def install_routes(app: FastAPI, routes: Iterable[RouteSpec], guard: list[Any] | None) -> None:
    """Register ``routes`` on ``app`` in order; ``guard`` (the API key) on the guarded ones."""
    for route in routes:
        app.add_api_route(
            route.path,
            route.endpoint,
            methods=[route.method],
            response_model=route.response_model,
            responses=dict(route.responses),
            summary=route.summary,
            description=route.description,
            name=route.name,
            tags=[route.tag],
            dependencies=guard if route.guarded else None,
            **route.options,
        )


class NotFoundWording(NamedTuple):
    """How a protocol words a model, version or label it does not serve (never the client's
    name or label)."""

    model: str
    version: str  # formatted with the served model's ``name`` and the ``version`` asked for
    label: str = "No loaded version of the model has the requested label."  # with ``name``


VersionedHandler = Callable[[Request, str, VersionChoice, Any], Awaitable[Response]]
"""A model operation: (request, model name in the URL, version choice, parsed body or None)."""


class VersionForm(NamedTuple):
    """One way a protocol's URL names the version: not at all, by number or by label."""

    path: str  # between the model's path and the operation's suffix
    parameter: inspect.Parameter | None
    summary: str | None  # the OpenAPI summary of an operation in this form (None: its own)


def _path_parameter(name: str, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)


BARE = VersionForm("", None, None)
BY_VERSION = VersionForm(
    "/versions/{version}", _path_parameter("version", VersionParam), "… a version"
)
BY_LABEL = VersionForm("/labels/{label}", _path_parameter("label", LabelParam), "… a label")


class VersionedOperation(NamedTuple):
    """One model operation of a protocol, served in each of the family's version forms."""

    suffix: str  # after the version form: ":predict", "/metadata", ""
    method: str
    handler: VersionedHandler
    body: type[BaseModel] | None  # the parsed body model, None for none (or a raw body)
    response_model: Any
    errors: tuple[int, ...]
    summary: str
    docs: tuple[tuple[str, str], ...]  # per form: (operation name, description)
    options: Mapping[str, Any] = {}


def versioned_endpoint(
    handler: VersionedHandler, form: VersionForm, body: type[BaseModel] | None
) -> Endpoint:
    """An endpoint for ``form`` whose signature declares exactly that form's parameters (so
    OpenAPI and validation see them), calling ``handler`` with the version choice."""

    async def endpoint(
        request: Request,
        name: str,
        version: str | None = None,
        label: str | None = None,
        body: Any = None,
    ) -> Response:
        if version is None and label is None:
            return await handler(request, name, DEFAULT_VERSION, body)
        choice = VersionChoice(None if version is None else int(version), label)
        return await handler(request, name, choice, body)

    parameters = [_path_parameter("name", str)]
    if form.parameter is not None:
        parameters.append(form.parameter)
    if body is not None:
        parameters.append(_path_parameter("body", body))
    parameters.append(_path_parameter("request", Request))
    endpoint.__signature__ = inspect.Signature(parameters, return_annotation=Response)  # type: ignore[attr-defined]
    return endpoint


class ProtocolAdapter:
    """One protocol family over the scoring core; subclasses live one per module."""

    error_shape: ClassVar[ErrorShape | None] = None

    def __init__(self, core: ScoringCore) -> None:
        self.core = core
        self._reads_request_id = core.reads_request_id  # fixed by the settings

    def routes(self) -> Sequence[RouteSpec]:
        """The family's HTTP routes (none for a protocol that is not HTTP)."""
        return ()

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[None]:
        """What runs while the app serves: entered after the core starts, left before it stops."""
        return contextlib.nullcontext()

    def describe(self, document: dict[str, Any]) -> None:
        """Adjust the app's OpenAPI ``document`` (built once per app)."""

    def start_closing(self) -> None:
        """SIGTERM, and every worker has stopped accepting HTTP: close this protocol's own
        connections gently (a gRPC server sends GOAWAY). HTTP routes have nothing to do."""

    def resolve(
        self,
        name: str,
        choice: VersionChoice,
        wording: NotFoundWording,
        request_id: str | None = None,
    ) -> Predictor:
        """``core.resolve`` with this protocol's not-found wording (404, gRPC NOT_FOUND, for
        an unknown model, version or label). ``request_id``: the client's, which keeps an
        unversioned request on its side of the canary split (``request_id``)."""
        try:
            return self.core.resolve(choice, name, request_id)
        except UnknownModelError:
            raise ModelNotFoundError(wording.model) from None
        except UnknownVersionError as exc:
            message = wording.version.format(name=self.core.model_name, version=exc.version)
            raise ModelNotFoundError(message) from None
        except UnknownLabelError:
            raise ModelNotFoundError(wording.label.format(name=self.core.model_name)) from None

    def request_id(self, request: Request) -> str | None:
        """The client's ``X-Request-ID``, read only while a canary split uses it."""
        if not self._reads_request_id:
            return None
        return request.headers.get(REQUEST_ID_HEADER)

    def versioned_routes(
        self,
        model_path: str,
        forms: Sequence[VersionForm],
        operations: Iterable[VersionedOperation],
        *,
        tag: str,
        error_model: type[BaseModel],
    ) -> list[RouteSpec]:
        """Each operation at ``model_path`` in each version form, operation by operation."""
        return [
            RouteSpec(
                f"{model_path}{form.path}{operation.suffix}",
                versioned_endpoint(operation.handler, form, operation.body),
                operation.method,
                operation.response_model,
                error_docs(error_model, operation.errors),
                form.summary or operation.summary,
                tag,
                name=name,
                description=description,
                options=operation.options,
            )
            for operation in operations
            for form, (name, description) in zip(forms, operation.docs, strict=True)
        ]
