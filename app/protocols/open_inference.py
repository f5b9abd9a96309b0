"""The Open Inference Protocol (KServe V2) over REST, for Triton and KServe clients.

Server routes ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``; model routes under
``/v2/models/{name}[/versions/{v}]``: metadata, ``/ready`` and ``POST /infer``. Infer takes one
BYTES input ``text`` of shape ``[N]`` and returns FP32 ``probability`` and ``logit`` of shape
``[N, 1]``; it honours ``outputs`` (selection and per-output ``binary_data``), ``id`` (echoed)
and the ``binary_data_output`` parameter. The binary tensor data extension is served both ways
(``Inference-Header-Content-Length``), because tritonclient uses it by default: BYTES
elements arrive as 4-byte little-endian lengths followed by the bytes, FP32 outputs leave as
raw little-endian floats.

Versions: the bare model routes serve the ``stable`` version (or the canary's share, for
infer), ``/versions/{v}`` any loaded version; metadata lists every loaded version, and every
answer a version produced names it in ``model_version`` (infer) and in the ``X-Model-Version``
header.

The body is parsed here with orjson rather than by a pydantic model: a binary body is not
JSON, and our own checks give the protocol's error messages. The OpenAPI schema still
describes the JSON form exactly (``app.protocols.open_inference_schemas``). Scoring goes
through the scoring core, so the version resolution, the limits, the micro-batcher, 429/503
and the metrics are the same as on every other route. Errors are ``{"error": "<message>"}``
(the adapter's error shape, on ``/v2``), with 400 for an invalid request as the protocol's
servers answer; client-chosen names are never echoed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response

from app.core.errors import InvalidInputError
from app.core.registry import VersionChoice
from app.core.texts import is_blank
from app.http.errors import JSON, ErrorShape
from app.http.middleware import MODEL_VERSION_HEADER
from app.protocols.base import (
    BARE,
    BY_VERSION,
    NotFoundWording,
    ProtocolAdapter,
    RouteSpec,
    VersionedOperation,
    error_docs,
    flat_error_shape,
    json_response,
)
from app.protocols.open_inference_schemas import (
    INFER_REQUEST_SCHEMA,
    OUTPUT_NAMES,
    InferResponse,
    LiveResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    ProtocolError,
    ServerMetadataResponse,
    ServerReadyResponse,
)
from contract import INPUT_NAME, LOGIT_OUTPUT, PROBABILITY_OUTPUT

PATH_PREFIX = "/v2"
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ("binary_tensor_data",)
PLATFORM = "tensorflow_savedmodel"

_TAG = "Open Inference Protocol (KServe V2)"
# A model or version not served, in the same words over REST and gRPC.
NOT_FOUND = NotFoundWording(
    "Request for unknown model: the model name is not served.",
    "Request for unknown model: '{name}' version {version} is not found",
    "Request for unknown model: no version of '{name}' has the requested label",
)
_INFER_DOCS: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": INFER_REQUEST_SCHEMA}},
    }
}


def _tensor(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape}


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


def decode_bytes_elements(raw: bytes, count: int) -> list[str]:
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


def _parse_texts(
    item: Any, binary: bytes, check_count: Callable[[int], None]
) -> tuple[list[str], int]:
    """The texts of the one input tensor, and how many binary bytes it used (``check_count``:
    the core's limit on texts per request)."""
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
    check_count(count)  # before decoding: a declared count over the limit reads nothing
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
        texts = decode_bytes_elements(binary[:binary_size], count)
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


def _encode_outputs(
    outputs: list[tuple[str, bool]], values: dict[str, list[float]], count: int
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The outputs asked for, each as JSON ``data`` or as raw little-endian FP32 bytes."""
    described: list[dict[str, Any]] = []
    tail: list[bytes] = []
    for output_name, as_binary in outputs:
        tensor = _tensor(output_name, "FP32", [count, 1])
        if as_binary:
            raw = np.asarray(values[output_name], dtype="<f4").tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            tail.append(raw)
        else:
            tensor["data"] = values[output_name]
        described.append(tensor)
    return described, tail


class OpenInferenceProtocol(ProtocolAdapter):
    """The Open Inference Protocol's REST routes over the scoring core."""

    error_shape: ClassVar[ErrorShape | None] = ErrorShape(PATH_PREFIX, flat_error_shape)

    async def server_metadata(self, request: Request) -> Response:
        """The server's name, version and protocol extensions."""
        return json_response(
            {"name": "sentiment-service", "version": request.app.version, "extensions": EXTENSIONS}
        )

    async def server_live(self) -> Response:
        """200 while the process serves HTTP (tritonclient reads the status, KServe ``live``)."""
        return json_response({"live": True})

    async def server_ready(self) -> Response:
        """200 once a verified, warm model is live; 503 before."""
        self.core.resolve()
        return json_response({"ready": True})

    async def model_ready(
        self, request: Request, name: str, choice: VersionChoice, body: None
    ) -> Response:
        predictor = self.resolve(name, choice, NOT_FOUND)
        return json_response(
            {"name": self.core.model_name, "ready": True}, version=predictor.version_label
        )

    async def model_metadata(
        self, request: Request, name: str, choice: VersionChoice, body: None
    ) -> Response:
        predictor = self.resolve(name, choice, NOT_FOUND)
        bare = choice.version is None and choice.label is None
        versions = self.core.served() if bare else [predictor]
        return json_response(
            {
                "name": self.core.model_name,
                "versions": [served.version_label for served in versions],
                "platform": PLATFORM,
                "inputs": [_tensor(INPUT_NAME, "BYTES", [-1])],
                "outputs": [_tensor(output, "FP32", [-1, 1]) for output in OUTPUT_NAMES],
            },
            version=None if bare else predictor.version_label,
        )

    async def infer(
        self, request: Request, name: str, choice: VersionChoice, body: None
    ) -> Response:
        predictor = self.resolve(name, choice, NOT_FOUND, self.request_id(request))
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
        texts, used = _parse_texts(inputs[0], binary, self.core.check_count)
        if used != len(binary):
            raise InvalidInputError("The binary data does not match the inputs' binary_data_size.")
        outputs = _requested_outputs(document)
        scores = await self.core.score(texts, predictor)
        values = {PROBABILITY_OUTPUT: scores.probabilities, LOGIT_OUTPUT: scores.logits}
        described, tail = _encode_outputs(outputs, values, len(texts))
        answer: dict[str, Any] = {
            "model_name": self.core.model_name,
            "model_version": predictor.version_label,
        }
        if request_id is not None:
            answer["id"] = request_id
        answer["outputs"] = described
        head = orjson.dumps(answer)
        version = {MODEL_VERSION_HEADER: predictor.version_label}
        if not tail:
            return Response(head, media_type=JSON, headers=version)
        return Response(
            b"".join([head, *tail]),
            media_type="application/octet-stream",
            headers={**version, HEADER_LENGTH: str(len(head))},
        )

    def routes(self) -> Sequence[RouteSpec]:
        post_errors = (400, 401, 404, 413, 429, 503)
        get_errors = (401, 404, 503)
        infer_docs = (
            (
                "infer",
                "Score texts: BYTES ``text`` [N] in, FP32 ``probability`` and ``logit`` "
                "[N, 1] out.",
            ),
            ("infer_version", "Infer on a given loaded version."),
        )
        ready_docs = (
            ("model_ready", "200 when the model is loaded (503 before, 404 for another name)."),
            ("model_version_ready", "200 when this version is loaded."),
        )
        metadata_docs = (
            ("model_metadata", "The model's input and output tensors and loaded versions."),
            ("model_version_metadata", "The metadata of one loaded version."),
        )
        infer_extra = {"openapi_extra": _INFER_DOCS}
        operations = (
            VersionedOperation(
                "/infer",
                "POST",
                self.infer,
                None,
                InferResponse,
                post_errors,
                "Open Inference Protocol infer",
                infer_docs,
                infer_extra,
            ),
            VersionedOperation(
                "/ready",
                "GET",
                self.model_ready,
                None,
                ModelReadyResponse,
                get_errors,
                "Model ready",
                ready_docs,
            ),
            VersionedOperation(
                "",
                "GET",
                self.model_metadata,
                None,
                ModelMetadataResponse,
                get_errors,
                "Model metadata",
                metadata_docs,
            ),
        )
        versioned = self.versioned_routes(
            f"{PATH_PREFIX}/models/{{name}}",
            (BARE, BY_VERSION),
            operations,
            tag=_TAG,
            error_model=ProtocolError,
        )
        # Health stays open like /healthz and /readyz: KServe's probes carry no key.
        return (
            *versioned,
            RouteSpec(
                PATH_PREFIX,
                self.server_metadata,
                "GET",
                ServerMetadataResponse,
                error_docs(ProtocolError, get_errors),
                "Server metadata",
                _TAG,
            ),
            RouteSpec(
                f"{PATH_PREFIX}/health/live",
                self.server_live,
                "GET",
                LiveResponse,
                {},
                "Server live",
                _TAG,
                guarded=False,
            ),
            RouteSpec(
                f"{PATH_PREFIX}/health/ready",
                self.server_ready,
                "GET",
                ServerReadyResponse,
                error_docs(ProtocolError, (503,)),
                "Server ready",
                _TAG,
                guarded=False,
            ),
        )
