"""The Open Inference Protocol (KServe V2) over REST, for Triton and KServe clients.

Server routes ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``; model routes under
``/v2/models/{name}[/versions/{v}]``: metadata, ``/ready`` and ``POST /infer``. Infer takes one
BYTES input ``text`` of shape ``[N]`` and returns FP32 ``probability`` and ``logit`` of shape
``[N, 1]``; it honours ``outputs`` (selection and per-output ``binary_data``), ``id`` (echoed)
and the ``binary_data_output`` parameter. The binary tensor data extension is served both ways
(``Inference-Header-Content-Length``), because tritonclient uses it by default: BYTES
elements arrive as 4-byte little-endian lengths followed by the bytes, FP32 outputs leave as
raw little-endian floats.

The body is parsed here with orjson rather than by a pydantic model: a binary body is not
JSON, and our own checks give the protocol's error messages. The OpenAPI schema still
describes the JSON form exactly. Scoring goes through ``app.core.scoring``, so the limits, the
micro-batcher, 429/503, the API key and the metrics are the same as on every other route.
Errors are ``{"error": "<message>"}`` (``register_error_shape`` on ``/v2``), with 400 for an
invalid request as the protocol's servers answer; client-chosen names are never echoed.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.params import Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from app.core.errors import (
    InvalidInputError,
    ModelNotFoundError,
    PayloadTooLargeError,
    protocol_error_shape,
    register_error_shape,
)
from app.core.predictor import Predictor
from app.core.scoring import check_batch_size, score_with_logits, service_of
from app.protocols.native_schemas import TEXT_PATTERN, is_blank
from app.service import Service
from contract import INPUT_NAME, LOGIT_OUTPUT, PROBABILITY_OUTPUT

PATH_PREFIX = "/v2"
register_error_shape(PATH_PREFIX, protocol_error_shape)

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ("binary_tensor_data",)
PLATFORM = "tensorflow_savedmodel"
OUTPUT_NAMES = (PROBABILITY_OUTPUT, LOGIT_OUTPUT)


VersionParam = Annotated[
    str, PathParam(pattern=r"^[0-9]{1,18}$", description="A model version (an integer).")
]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ServerMetadataResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


class LiveResponse(BaseModel):
    live: bool


class ReadyResponse(BaseModel):
    ready: bool


class ModelReadyResponse(BaseModel):
    name: str
    ready: bool


class ModelMetadataResponse(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class InferOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[float] | None = Field(default=None, description="Absent when sent as binary.")


class InferResponse(BaseModel):
    """The JSON part of an answer (binary outputs follow it, see the header)."""

    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[InferOutput]


class ProtocolError(BaseModel):
    """The protocol's one error shape."""

    error: str


_TEXT_SCHEMA = {"type": "string", "minLength": 1, "pattern": TEXT_PATTERN}
_PARAMETERS_SCHEMA = {"type": "object", "additionalProperties": True}
_INFER_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string", "maxLength": 256},
        "parameters": {
            "type": "object",
            "properties": {"binary_data_output": {"type": "boolean"}},
            "additionalProperties": True,
        },
        "inputs": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "datatype", "shape", "data"],
                "properties": {
                    "name": {"type": "string", "enum": [INPUT_NAME]},
                    "datatype": {"type": "string", "enum": ["BYTES"]},
                    "shape": {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 1},
                        "minItems": 1,
                        "maxItems": 1,
                    },
                    "parameters": _PARAMETERS_SCHEMA,
                    "data": {"type": "array", "minItems": 1, "items": _TEXT_SCHEMA},
                },
            },
        },
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "enum": list(OUTPUT_NAMES)},
                    "parameters": {
                        "type": "object",
                        "properties": {"binary_data": {"type": "boolean"}},
                        "additionalProperties": True,
                    },
                },
            },
        },
    },
    "examples": [
        {
            "id": "42",
            "inputs": [
                {
                    "name": INPUT_NAME,
                    "datatype": "BYTES",
                    "shape": [2],
                    "data": ["A wonderful film.", "Terrible acting, a waste of time."],
                }
            ],
            "outputs": [{"name": PROBABILITY_OUTPUT}],
        }
    ],
}


def _json(content: Any) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


def _resolve(service: Service, name: str, version: str | None) -> Predictor:
    """The live model if the URL names it; the client's name is never echoed."""
    model_name = service.settings.model_name
    if name != model_name:
        raise ModelNotFoundError("Request for unknown model: the model name is not served.")
    predictor = service.registry.require_live()
    if version is not None and int(version) != predictor.version:
        raise ModelNotFoundError(
            f"Request for unknown model: '{model_name}' version {int(version)} is not found"
        )
    return predictor


async def server_metadata(request: Request) -> Response:
    """The server's name, version and protocol extensions."""
    return _json(
        {"name": "sentiment-service", "version": request.app.version, "extensions": EXTENSIONS}
    )


async def server_live() -> Response:
    """200 while the process serves HTTP (tritonclient reads the status, KServe ``live``)."""
    return _json({"live": True})


async def server_ready(request: Request) -> Response:
    """200 once a verified, warm model is live; 503 before."""
    service_of(request).registry.require_live()
    return _json({"ready": True})


async def _model_ready(request: Request, name: str, version: str | None = None) -> Response:
    service = service_of(request)
    _resolve(service, name, version)
    return _json({"name": service.settings.model_name, "ready": True})


async def model_ready(name: str, request: Request) -> Response:
    """200 when the model is live (503 before, 404 for another name)."""
    return await _model_ready(request, name)


async def model_version_ready(name: str, version: VersionParam, request: Request) -> Response:
    """200 when this version is the live one."""
    return await _model_ready(request, name, version)


def _tensor(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape}


async def _model_metadata(request: Request, name: str, version: str | None = None) -> Response:
    service = service_of(request)
    predictor = _resolve(service, name, version)
    return _json(
        {
            "name": service.settings.model_name,
            "versions": [predictor.version_label],
            "platform": PLATFORM,
            "inputs": [_tensor(INPUT_NAME, "BYTES", [-1])],
            "outputs": [_tensor(output, "FP32", [-1, 1]) for output in OUTPUT_NAMES],
        }
    )


async def model_metadata(name: str, request: Request) -> Response:
    """The model's input and output tensors."""
    return await _model_metadata(request, name)


async def model_version_metadata(name: str, version: VersionParam, request: Request) -> Response:
    """The metadata of one version (the live one)."""
    return await _model_metadata(request, name, version)


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary tail (the binary tensor data extension)."""
    if header_length is None:
        return body, b""
    if not header_length.isascii() or not header_length.isdigit() or len(header_length) > 12:
        raise InvalidInputError(f"{HEADER_LENGTH} must be a non-negative integer.")
    length = int(header_length)
    if length > len(body):
        raise InvalidInputError(f"{HEADER_LENGTH} is larger than the request body.")
    return body[:length], body[length:]


def _decode_bytes_elements(raw: bytes, count: int) -> list[str]:
    """BYTES tensor elements in binary form: uint32 little-endian length, then the bytes."""
    texts: list[str] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidInputError("Binary BYTES data ends inside an element length.")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInputError("Binary BYTES data ends inside an element.")
        try:
            texts.append(raw[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidInputError("Input 'text' must be UTF-8 text.") from exc
        offset += length
        if len(texts) > count:
            break
    return texts


def _parse_texts(item: Any, binary: bytes, max_items: int) -> tuple[list[str], int]:
    """The texts of the one input tensor, and how many binary bytes it used."""
    if not isinstance(item, dict):
        raise InvalidInputError("Each input must be an object.")
    if item.get("name") != INPUT_NAME:
        raise InvalidInputError(f"Unexpected inference input; the model's input is {INPUT_NAME!r}.")
    if item.get("datatype") != "BYTES":
        raise InvalidInputError(f"Input {INPUT_NAME!r} must have datatype BYTES.")
    shape = item.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 1
        or not isinstance(shape[0], int)
        or isinstance(shape[0], bool)
        or shape[0] < 1
    ):
        raise InvalidInputError(f"Input {INPUT_NAME!r} must have shape [N] with N >= 1.")
    count = shape[0]
    if count > max_items:
        raise PayloadTooLargeError(f"At most {max_items} texts per request.")
    parameters = item.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInputError("Input parameters must be an object.")
    binary_size = parameters.get("binary_data_size")
    used = 0
    if binary_size is not None:
        if not isinstance(binary_size, int) or isinstance(binary_size, bool) or binary_size < 0:
            raise InvalidInputError("binary_data_size must be a non-negative integer.")
        if binary_size > len(binary):
            raise InvalidInputError("binary_data_size is larger than the binary data sent.")
        if "data" in item:
            raise InvalidInputError("An input has both 'data' and binary data.")
        texts = _decode_bytes_elements(binary[:binary_size], count)
        used = binary_size
    else:
        data = item.get("data")
        if not isinstance(data, list) or not all(isinstance(text, str) for text in data):
            raise InvalidInputError(f"Input {INPUT_NAME!r} data must be a list of strings.")
        texts = data
    if len(texts) != count:
        raise InvalidInputError(f"Input {INPUT_NAME!r} has shape [{count}] but another count.")
    if any(is_blank(text) for text in texts):
        raise InvalidInputError("A text must not be empty or whitespace only.")
    return texts, used


def _requested_outputs(document: dict[str, Any]) -> list[tuple[str, bool]]:
    """(output name, send as binary) in the order asked, or every output by default."""
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInputError("Request parameters must be an object.")
    binary_default = parameters.get("binary_data_output", False) is True
    requested = document.get("outputs")
    if requested is None:
        return [(name, binary_default) for name in OUTPUT_NAMES]
    if not isinstance(requested, list):
        raise InvalidInputError("'outputs' must be a list.")
    chosen: list[tuple[str, bool]] = []
    for output in requested:
        if not isinstance(output, dict) or output.get("name") not in OUTPUT_NAMES:
            raise InvalidInputError(f"Unexpected inference output; outputs are {OUTPUT_NAMES}.")
        output_parameters = output.get("parameters") or {}
        if not isinstance(output_parameters, dict):
            raise InvalidInputError("Output parameters must be an object.")
        binary = output_parameters.get("binary_data", binary_default) is True
        chosen.append((output["name"], binary))
    return chosen


async def _infer(request: Request, name: str, version: str | None = None) -> Response:
    service = service_of(request)
    requested = _resolve(service, name, version)
    header, binary = _split_body(await request.body(), request.headers.get(HEADER_LENGTH))
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError("The request body is not valid JSON.") from exc
    if not isinstance(document, dict):
        raise InvalidInputError("The request body must be a JSON object.")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInputError("'id' must be a string.")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise InvalidInputError(f"Expected exactly one input, {INPUT_NAME!r}.")
    texts, used = _parse_texts(inputs[0], binary, service.settings.max_batch_items)
    if used != len(binary):
        raise InvalidInputError("The binary data does not match the inputs' binary_data_size.")
    outputs = _requested_outputs(document)
    check_batch_size(service, len(texts))
    probabilities, logits, scored_by = await score_with_logits(service, texts)
    if version is not None and scored_by.version != requested.version:
        # A newer version was swapped in meanwhile: the one asked for is gone.
        _resolve(service, name, version)
    values = {PROBABILITY_OUTPUT: probabilities, LOGIT_OUTPUT: logits}
    shape = [len(texts), 1]
    described: list[dict[str, Any]] = []
    tail: list[bytes] = []
    for output_name, as_binary in outputs:
        tensor = _tensor(output_name, "FP32", shape)
        if as_binary:
            raw = np.asarray(values[output_name], dtype="<f4").tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            tail.append(raw)
        else:
            tensor["data"] = values[output_name]
        described.append(tensor)
    answer: dict[str, Any] = {
        "model_name": service.settings.model_name,
        "model_version": scored_by.version_label,
    }
    if request_id is not None:
        answer["id"] = request_id
    answer["outputs"] = described
    head = orjson.dumps(answer)
    if not tail:
        return Response(head, media_type="application/json")
    return Response(
        b"".join([head, *tail]),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(head))},
    )


async def infer(name: str, request: Request) -> Response:
    """Score texts: BYTES ``text`` [N] in, FP32 ``probability`` and ``logit`` [N, 1] out."""
    return await _infer(request, name)


async def infer_version(name: str, version: VersionParam, request: Request) -> Response:
    """Infer on a given version (must be the live one)."""
    return await _infer(request, name, version)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ProtocolError} for status in statuses}


_MODEL = f"{PATH_PREFIX}/models/{{name}}"
_VERSION = f"{_MODEL}/versions/{{version}}"
_INFER_DOCS: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _INFER_REQUEST_SCHEMA},
        },
    }
}
_ROUTES: tuple[tuple[str, Callable[..., Awaitable[Response]], str, Any, str], ...] = (
    (f"{_MODEL}/infer", infer, "POST", InferResponse, "Open Inference Protocol infer"),
    (f"{_VERSION}/infer", infer_version, "POST", InferResponse, "… a version"),
    (f"{_MODEL}/ready", model_ready, "GET", ModelReadyResponse, "Model ready"),
    (f"{_VERSION}/ready", model_version_ready, "GET", ModelReadyResponse, "… a version"),
    (_MODEL, model_metadata, "GET", ModelMetadataResponse, "Model metadata"),
    (_VERSION, model_version_metadata, "GET", ModelMetadataResponse, "… a version"),
    (PATH_PREFIX, server_metadata, "GET", ServerMetadataResponse, "Server metadata"),
)


def install_routes(app: FastAPI, dependencies: list[Depends] | None) -> None:
    """Register the V2 routes; ``dependencies`` (the API key) guard all but health."""
    for path, endpoint, method, response_model, summary in _ROUTES:
        post = method == "POST"
        app.add_api_route(
            path,
            endpoint,
            methods=[method],
            response_model=response_model,
            responses=_errors(400, 401, 404, 413, 429, 503) if post else _errors(401, 404, 503),
            summary=summary,
            tags=["Open Inference Protocol (KServe V2)"],
            dependencies=dependencies,
            openapi_extra=_INFER_DOCS if post else None,
        )
    # Health stays open like /healthz and /readyz: KServe's probes carry no key.
    app.add_api_route(
        f"{PATH_PREFIX}/health/live",
        server_live,
        methods=["GET"],
        response_model=LiveResponse,
        summary="Server live",
        tags=["Open Inference Protocol (KServe V2)"],
    )
    app.add_api_route(
        f"{PATH_PREFIX}/health/ready",
        server_ready,
        methods=["GET"],
        response_model=ReadyResponse,
        responses=_errors(503),
        summary="Server ready",
        tags=["Open Inference Protocol (KServe V2)"],
    )
