"""TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest), for drop-in clients.

Routes under ``/v1/models/{name}``: status, ``/metadata``, ``:predict``, ``:classify`` and
``:regress``, each bare, with ``/versions/{v}`` or with ``/labels/{label}``. One version is
served (the live one), so ``v`` must be it and the one label, ``stable``, names it; any other
version is TF Serving's not-found error. Bodies follow TF Serving exactly: the row format
answers ``{"predictions": [{"probability": [p], "logit": [l]}, ...]}`` and the columnar one
``{"outputs": {"probability": [[p], ...], "logit": [[l], ...]}}`` (named outputs, because the
signature has two), and every error is ``{"error": "<message>"}`` with TF Serving's status
(400 for what TF Serving calls INVALID_ARGUMENT, 404 NOT_FOUND, 503 UNAVAILABLE, ...). The
errors are the service's own ServiceError types; ``register_error_shape`` switches their
body shape for this path family, framework errors included.

``GET /v1/models/{name}`` is also KServe V1's readiness route, so its body carries KServe's
``name`` and ``ready`` beside TF Serving's ``model_version_status``.

Metadata lists every signature_def of the SavedModel as TF Serving does (read from the
version's ``saved_model.pb``, so a version with more signatures lists them all), in the
protobuf JSON mapping TF Serving prints (int64 as strings, default fields included).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.params import Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from app.core.errors import (
    InvalidInputError,
    ModelNotFoundError,
    NotReadyError,
    protocol_error_shape,
    register_error_shape,
)
from app.core.predictor import Predictor
from app.core.scoring import check_batch_size, score_with_logits, service_of
from app.protocols.native_schemas import NonBlankText
from app.service import Service
from contract import LOGIT_OUTPUT, PROBABILITY_OUTPUT, SIGNATURE_NAME

PATH_PREFIX = "/v1/models"
register_error_shape(PATH_PREFIX, protocol_error_shape)

LABELS = ("stable",)
"""Version labels; each names the live version (TF Serving's ``version_labels``)."""

_PREDICT_METHOD = "tensorflow/serving/predict"
_CLASSIFY_METHOD = "tensorflow/serving/classify"
_REGRESS_METHOD = "tensorflow/serving/regress"
_EXAMPLE_TEXT = "This movie was wonderful, I loved every minute of it."

# A text: at least one non-whitespace character (the same rule as /v1/predict, in the schema).
ProtocolText = NonBlankText
VersionParam = Annotated[
    str, PathParam(pattern=r"^[0-9]{1,18}$", description="A model version (an integer).")
]
LabelParam = Annotated[
    str, PathParam(pattern=r"^[^/:]{1,64}$", description="A version label: 'stable'.")
]


def _predict_schema_extra(schema: dict[str, Any]) -> None:
    """Examples, and TF Serving's rule in the schema: exactly one of instances or inputs."""
    schema["examples"] = [
        {"instances": [_EXAMPLE_TEXT, "Terrible acting, a waste of time."]},
        {"signature_name": SIGNATURE_NAME, "instances": [{"text": _EXAMPLE_TEXT}]},
        {"inputs": {"text": [_EXAMPLE_TEXT]}},
    ]
    schema["oneOf"] = [{"required": ["instances"]}, {"required": ["inputs"]}]


class TextInstance(BaseModel):
    """TF Serving's row format with the signature's named input."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re")

    text: ProtocolText


class TextColumns(BaseModel):
    """TF Serving's columnar format with the signature's named input."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re")

    text: list[ProtocolText] = Field(min_length=1)


class TFServingPredictRequest(BaseModel):
    """TF Serving REST predict body: row format (``instances``) or columnar (``inputs``)."""

    model_config = ConfigDict(
        extra="forbid", regex_engine="python-re", json_schema_extra=_predict_schema_extra
    )

    signature_name: str | None = Field(
        default=None, max_length=256, description=f"Only {SIGNATURE_NAME!r} (the default)."
    )
    instances: list[ProtocolText | TextInstance] | None = Field(default=None, min_length=1)
    inputs: list[ProtocolText] | TextColumns | None = Field(default=None)

    def texts(self) -> list[str]:
        """The texts to score, whichever format the client used."""
        if self.instances is not None:
            return [
                item.text if isinstance(item, TextInstance) else item for item in self.instances
            ]
        if isinstance(self.inputs, TextColumns):
            return self.inputs.text
        return self.inputs or []


class TFServingExamplesRequest(BaseModel):
    """TF Serving's classify/regress body (``tf.Example`` features as JSON)."""

    model_config = ConfigDict(extra="allow")

    signature_name: str | None = Field(default=None, max_length=256)
    context: dict[str, Any] | None = None
    examples: list[dict[str, Any]] = Field(min_length=1)


class NamedOutputs(BaseModel):
    probability: list[float] = Field(description="P(positive), one value per text.")
    logit: list[float] = Field(description="The model's logit for the same text.")


class NamedColumns(BaseModel):
    probability: list[list[float]]
    logit: list[list[float]]


class TFServingPredictResponse(BaseModel):
    """Row format answers ``predictions``; columnar answers ``outputs``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"predictions": [{"probability": [0.9123], "logit": [2.34]}]},
                {"outputs": {"probability": [[0.9123]], "logit": [[2.34]]}},
            ]
        }
    )

    predictions: list[NamedOutputs] | None = None
    outputs: NamedColumns | None = None


class VersionStatusDetail(BaseModel):
    error_code: str = "OK"
    error_message: str = ""


class ModelVersionStatus(BaseModel):
    version: str
    state: str = "AVAILABLE"
    status: VersionStatusDetail = Field(default_factory=VersionStatusDetail)


class TFServingModelStatusResponse(BaseModel):
    """TF Serving's GetModelStatus answer; the bare route adds KServe V1's readiness."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_version_status": [
                        {
                            "version": "3",
                            "state": "AVAILABLE",
                            "status": {"error_code": "OK", "error_message": ""},
                        }
                    ],
                    "name": "sentiment",
                    "ready": True,
                }
            ]
        }
    )

    model_version_status: list[ModelVersionStatus]
    name: str | None = Field(default=None, description="KServe V1: the model name.")
    ready: bool | None = Field(default=None, description="KServe V1: true when it serves.")


class ModelSpec(BaseModel):
    name: str
    signature_name: str = ""
    version: str


class TFServingMetadataResponse(BaseModel):
    """TF Serving's GetModelMetadata answer: every signature_def of the SavedModel."""

    model_spec: ModelSpec
    metadata: dict[str, dict[str, Any]] = Field(
        description='{"signature_def": {"signature_def": {<name>: SignatureDef JSON}}}'
    )


class TFServingError(BaseModel):
    """TF Serving's one error shape."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"error": "Servable not found"}]})

    error: str


def _json(content: Any) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


def _resolve(service: Service, name: str, version: str | None, label: str | None) -> Predictor:
    """The live model if the URL names it (model, version or label), else TF Serving's error.

    The client's model name and label are never put in the message.
    """
    model_name = service.settings.model_name
    if name != model_name:
        raise ModelNotFoundError("Servable not found for request: Latest(<unknown model>)")
    if label is not None and label not in LABELS:
        raise InvalidInputError("Unrecognized servable version label.")
    predictor = service.registry.require_live()
    if version is not None and int(version) != predictor.version:
        raise ModelNotFoundError(
            f"Servable not found for request: Specific({model_name}, {int(version)})"
        )
    return predictor


# The signature_defs of each loaded version, parsed once from its saved_model.pb.
_SIGNATURES: weakref.WeakKeyDictionary[Predictor, dict[str, Any]] = weakref.WeakKeyDictionary()


def _read_signature_defs(version_dir: Path) -> dict[str, Any]:
    """The SavedModel's signature_def map in the protobuf JSON mapping TF Serving prints."""
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2  # deferred: TensorFlow is heavy

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    return {
        name: json_format.MessageToDict(
            signature,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        for name, signature in saved_model.meta_graphs[0].signature_def.items()
    }


async def signature_defs(service: Service, predictor: Predictor) -> dict[str, Any]:
    """The version's signature_defs (read in a thread the first time, then cached)."""
    found = _SIGNATURES.get(predictor)
    if found is None:
        version_dir = service.registry.base_path / predictor.version_label
        try:
            found = await asyncio.to_thread(_read_signature_defs, version_dir)
        except Exception as exc:  # the directory went away or is unreadable
            raise NotReadyError("The model's signatures are not readable right now.") from exc
        _SIGNATURES[predictor] = found
    return found


async def _check_signature(service: Service, predictor: Predictor, name: str | None) -> None:
    """Predict serves ``serving_default`` only; other names get TF Serving's 400."""
    if name in (None, "", SIGNATURE_NAME):
        return
    if name not in await signature_defs(service, predictor):
        raise InvalidInputError("Serving signature name not found in signature def.")
    raise InvalidInputError(f"Only the {SIGNATURE_NAME!r} signature is served over REST here.")


async def _predict(
    request: Request,
    body: TFServingPredictRequest,
    name: str,
    version: str | None = None,
    label: str | None = None,
) -> Response:
    service = service_of(request)
    predictor = _resolve(service, name, version, label)
    await _check_signature(service, predictor, body.signature_name)
    if body.instances is None and body.inputs is None:
        raise InvalidInputError("Missing 'inputs' or 'instances' key")
    if body.instances is not None and body.inputs is not None:
        raise InvalidInputError("Not both 'instances' and 'inputs' can be specified")
    texts = body.texts()
    if not texts:
        raise InvalidInputError("At least one text is required.")
    check_batch_size(service, len(texts))
    probabilities, logits, _ = await score_with_logits(service, texts)
    if body.instances is not None:
        rows = [
            {PROBABILITY_OUTPUT: [p], LOGIT_OUTPUT: [logit]}
            for p, logit in zip(probabilities, logits, strict=True)
        ]
        return _json({"predictions": rows})
    columns = {
        PROBABILITY_OUTPUT: [[p] for p in probabilities],
        LOGIT_OUTPUT: [[logit] for logit in logits],
    }
    return _json({"outputs": columns})


async def predict(name: str, body: TFServingPredictRequest, request: Request) -> Response:
    """TF Serving predict on the live version."""
    return await _predict(request, body, name)


async def predict_version(
    name: str, version: VersionParam, body: TFServingPredictRequest, request: Request
) -> Response:
    """TF Serving predict on a given version (must be the live one)."""
    return await _predict(request, body, name, version=version)


async def predict_label(
    name: str, label: LabelParam, body: TFServingPredictRequest, request: Request
) -> Response:
    """TF Serving predict on a labelled version ('stable' is the live one)."""
    return await _predict(request, body, name, label=label)


def _examples_endpoint(method: str) -> Callable[..., Awaitable[Response]]:
    """:classify or :regress, answered as TF Serving answers a model without that signature."""
    kind = "classification" if method == _CLASSIFY_METHOD else "regression"

    async def answer(
        request: Request,
        body: TFServingExamplesRequest,
        name: str,
        version: str | None = None,
        label: str | None = None,
    ) -> Response:
        service = service_of(request)
        predictor = _resolve(service, name, version, label)
        signatures = await signature_defs(service, predictor)
        signature = signatures.get(body.signature_name or SIGNATURE_NAME)
        if signature is None:
            raise InvalidInputError("No signature was found with the name given.")
        found = signature.get("method_name", "")
        if found != method:
            raise InvalidInputError(
                f"Expected {kind} signature method_name to be {method}. Was: {found}"
            )
        # No served version has such a signature; if one ever does, say so rather than guess.
        raise InvalidInputError(f"The {kind} API is not implemented by this server.")

    return answer


_classify = _examples_endpoint(_CLASSIFY_METHOD)
_regress = _examples_endpoint(_REGRESS_METHOD)


async def classify(name: str, body: TFServingExamplesRequest, request: Request) -> Response:
    """TF Serving classify: this model has no classification signature (400, as TF Serving)."""
    return await _classify(request, body, name)


async def classify_version(
    name: str, version: VersionParam, body: TFServingExamplesRequest, request: Request
) -> Response:
    """TF Serving classify on a given version."""
    return await _classify(request, body, name, version=version)


async def classify_label(
    name: str, label: LabelParam, body: TFServingExamplesRequest, request: Request
) -> Response:
    """TF Serving classify on a labelled version."""
    return await _classify(request, body, name, label=label)


async def regress(name: str, body: TFServingExamplesRequest, request: Request) -> Response:
    """TF Serving regress: this model has no regression signature (400, as TF Serving)."""
    return await _regress(request, body, name)


async def regress_version(
    name: str, version: VersionParam, body: TFServingExamplesRequest, request: Request
) -> Response:
    """TF Serving regress on a given version."""
    return await _regress(request, body, name, version=version)


async def regress_label(
    name: str, label: LabelParam, body: TFServingExamplesRequest, request: Request
) -> Response:
    """TF Serving regress on a labelled version."""
    return await _regress(request, body, name, label=label)


def _status_body(predictor: Predictor) -> dict[str, Any]:
    status = {
        "version": predictor.version_label,
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }
    return {"model_version_status": [status]}


def _resolve_status(
    service: Service, name: str, version: str | None, label: str | None
) -> Predictor:
    """As ``_resolve``, with GetModelStatus's own not-found messages."""
    model_name = service.settings.model_name
    if name != model_name:
        raise ModelNotFoundError("Could not find any versions of the requested model.")
    if label is not None and label not in LABELS:
        raise InvalidInputError("Unrecognized servable version label.")
    predictor = service.registry.require_live()
    if version is not None and int(version) != predictor.version:
        raise ModelNotFoundError(f"Could not find version {int(version)} of model {model_name}")
    return predictor


async def model_status(name: str, request: Request) -> Response:
    """TF Serving's status of the served versions; also KServe V1's model readiness."""
    service = service_of(request)
    predictor = _resolve_status(service, name, None, None)
    return _json({**_status_body(predictor), "name": service.settings.model_name, "ready": True})


async def model_status_version(name: str, version: VersionParam, request: Request) -> Response:
    """TF Serving's status of one version."""
    return _json(_status_body(_resolve_status(service_of(request), name, version, None)))


async def model_status_label(name: str, label: LabelParam, request: Request) -> Response:
    """TF Serving's status of a labelled version."""
    return _json(_status_body(_resolve_status(service_of(request), name, None, label)))


async def _metadata(
    request: Request, name: str, version: str | None = None, label: str | None = None
) -> Response:
    service = service_of(request)
    predictor = _resolve(service, name, version, label)
    signatures = await signature_defs(service, predictor)
    return _json(
        {
            "model_spec": {
                "name": service.settings.model_name,
                "signature_name": "",
                "version": predictor.version_label,
            },
            "metadata": {"signature_def": {"signature_def": signatures}},
        }
    )


async def metadata(name: str, request: Request) -> Response:
    """TF Serving's model metadata: every signature_def with dtypes and shapes."""
    return await _metadata(request, name)


async def metadata_version(name: str, version: VersionParam, request: Request) -> Response:
    """TF Serving's metadata of one version."""
    return await _metadata(request, name, version=version)


async def metadata_label(name: str, label: LabelParam, request: Request) -> Response:
    """TF Serving's metadata of a labelled version."""
    return await _metadata(request, name, label=label)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": TFServingError} for status in statuses}


_PREDICT_ERRORS = _errors(400, 401, 404, 413, 429, 503)
_READ_ERRORS = _errors(400, 401, 404, 503)

_BARE = f"{PATH_PREFIX}/{{name}}"
_VERSION = f"{_BARE}/versions/{{version}}"
_LABEL = f"{_BARE}/labels/{{label}}"

_ROUTES: tuple[tuple[str, Callable[..., Awaitable[Response]], str, Any, str], ...] = (
    (f"{_BARE}:predict", predict, "POST", TFServingPredictResponse, "TF Serving predict"),
    (f"{_VERSION}:predict", predict_version, "POST", TFServingPredictResponse, "… a version"),
    (f"{_LABEL}:predict", predict_label, "POST", TFServingPredictResponse, "… a label"),
    (f"{_BARE}:classify", classify, "POST", TFServingError, "TF Serving classify"),
    (f"{_VERSION}:classify", classify_version, "POST", TFServingError, "… a version"),
    (f"{_LABEL}:classify", classify_label, "POST", TFServingError, "… a label"),
    (f"{_BARE}:regress", regress, "POST", TFServingError, "TF Serving regress"),
    (f"{_VERSION}:regress", regress_version, "POST", TFServingError, "… a version"),
    (f"{_LABEL}:regress", regress_label, "POST", TFServingError, "… a label"),
    (_BARE, model_status, "GET", TFServingModelStatusResponse, "TF Serving status, KServe V1"),
    (_VERSION, model_status_version, "GET", TFServingModelStatusResponse, "… a version"),
    (_LABEL, model_status_label, "GET", TFServingModelStatusResponse, "… a label"),
    (f"{_BARE}/metadata", metadata, "GET", TFServingMetadataResponse, "TF Serving metadata"),
    (f"{_VERSION}/metadata", metadata_version, "GET", TFServingMetadataResponse, "… a version"),
    (f"{_LABEL}/metadata", metadata_label, "GET", TFServingMetadataResponse, "… a label"),
)


def install_routes(app: FastAPI, dependencies: list[Depends] | None) -> None:
    """Register the TF Serving routes (``dependencies``: the API key check, if any)."""
    for path, endpoint, method, response_model, summary in _ROUTES:
        app.add_api_route(
            path,
            endpoint,
            methods=[method],
            response_model=response_model,
            responses=_PREDICT_ERRORS if method == "POST" else _READ_ERRORS,
            summary=summary,
            tags=["TF Serving REST"],
            dependencies=dependencies,
        )
