"""TF Serving's gRPC API: ``tensorflow.serving.PredictionService`` and ``ModelService``.

The messages are TF Serving's own (the pinned ``tensorflow-serving-api`` wheel,
``protos/README.md``). ``Predict`` takes ``inputs["text"]``, a DT_STRING tensor of shape
``[N]``, and answers ``probability`` and ``logit`` as DT_FLOAT ``[N, 1]`` (``float_val``, as TF
Serving fills them), honouring ``output_filter``; ``model_spec`` may name a ``version`` or a
``version_label`` like the REST ``/versions/`` and ``/labels/`` routes (without either, the
canary's share, sticky on ``x-request-id`` metadata as REST is on ``X-Request-ID``).
``GetModelMetadata`` packs the SavedModel's ``signature_def`` map as TF Serving does (an
``Any`` holding a ``SignatureDefMap``), ``GetModelStatus`` lists every version the service
knows with its state, or the one named (the REST status's very entries), and
``Classify``/``Regress``/``MultiInference`` get TF Serving's answer for a model without such
signatures. Errors read as over REST (same messages), with their gRPC status codes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from google.protobuf.message import Message
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_pb2,
    model_service_pb2,
    predict_pb2,
    prediction_service_pb2,
    regression_pb2,
)

from app.core.errors import InvalidInputError
from app.core.predictor import Predictor
from app.core.registry import DEFAULT_VERSION, VersionChoice
from app.core.texts import is_blank
from app.protocols.base import NotFoundWording
from app.protocols.grpc.calls import Context, Method, Service, answered_by
from app.protocols.tfserving import SERVABLE_NOT_FOUND, model_version_status
from contract import INPUT_NAME, LOGIT_OUTPUT, PROBABILITY_OUTPUT, SIGNATURE_NAME

if TYPE_CHECKING:
    from app.protocols.grpc.server import GrpcProtocol

OUTPUTS = (PROBABILITY_OUTPUT, LOGIT_OUTPUT)
_CLASSIFY = "tensorflow/serving/classify"
_REGRESS = "tensorflow/serving/regress"
_KINDS = {_CLASSIFY: "classification", _REGRESS: "regression"}
_SIGNATURE_DEF_FIELD = "signature_def"


def version_choice(spec: Any) -> VersionChoice:
    """A ``ModelSpec``'s version choice: ``version``, ``version_label`` or neither."""
    which = spec.WhichOneof("version_choice")
    if which == "version":
        return VersionChoice(version=int(spec.version.value))
    if which == "version_label":
        return VersionChoice(label=spec.version_label)
    return DEFAULT_VERSION


def _shape(*sizes: int) -> tensor_shape_pb2.TensorShapeProto:
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in sizes]
    return tensor_shape_pb2.TensorShapeProto(dim=dims)


def _dtype_name(dtype: int) -> str:
    return str(types_pb2.DataType.Name(dtype)) if dtype in types_pb2.DataType.values() else "?"


class PredictionServicer:
    """``PredictionService`` and ``ModelService`` over the adapter's core."""

    def __init__(self, protocol: GrpcProtocol) -> None:
        self._protocol = protocol
        self._core = protocol.core

    def _resolve(
        self,
        spec: Any,
        wording: NotFoundWording = SERVABLE_NOT_FOUND,
        request_id: str | None = None,
    ) -> Predictor:
        return self._protocol.resolve(spec.name, version_choice(spec), wording, request_id)

    def _model_spec(self, predictor: Predictor, signature_name: str = "") -> Any:
        return model_pb2.ModelSpec(
            name=self._core.model_name,
            version={"value": predictor.version},
            signature_name=signature_name,
        )

    async def Predict(self, request: Any, context: Context) -> Message:
        request_id = self._protocol.call_request_id(context)
        predictor = self._resolve(request.model_spec, request_id=request_id)
        await self._check_signature(predictor, request.model_spec.signature_name)
        texts = self._texts(request.inputs)
        outputs = self._outputs(request.output_filter)
        scores = await self._core.score(texts, predictor)
        values = {PROBABILITY_OUTPUT: scores.probabilities, LOGIT_OUTPUT: scores.logits}
        response = predict_pb2.PredictResponse(
            model_spec=self._model_spec(predictor, SIGNATURE_NAME)
        )
        for name in outputs:
            response.outputs[name].CopyFrom(
                tensor_pb2.TensorProto(
                    dtype=types_pb2.DT_FLOAT,
                    tensor_shape=_shape(len(texts), 1),
                    float_val=values[name],
                )
            )
        answered_by(predictor)
        return response  # type: ignore[no-any-return]

    async def _check_signature(self, predictor: Predictor, name: str) -> None:
        """Predict serves ``serving_default`` only; other names get the REST route's error."""
        if name in ("", SIGNATURE_NAME):
            return
        if name not in await self._core.signature_defs(predictor):
            raise InvalidInputError("Serving signature name not found in signature def.")
        raise InvalidInputError(f"Only the {SIGNATURE_NAME!r} signature is served here.")

    def _texts(self, inputs: Mapping[str, Any]) -> list[str]:
        """The texts of ``inputs["text"]``: a DT_STRING tensor of shape [N], N >= 1."""
        if set(inputs) != {INPUT_NAME}:
            raise InvalidInputError(
                f"The signature has one input, {INPUT_NAME!r}; send exactly that input."
            )
        tensor = inputs[INPUT_NAME]
        if tensor.dtype != types_pb2.DT_STRING:
            raise InvalidInputError(
                f"Input {INPUT_NAME!r} must be a DT_STRING tensor, not {_dtype_name(tensor.dtype)}."
            )
        dims = [dim.size for dim in tensor.tensor_shape.dim]
        if tensor.tensor_shape.unknown_rank or len(dims) != 1:
            raise InvalidInputError(f"Input {INPUT_NAME!r} must have shape [N] (one dimension).")
        count = dims[0]
        if count < 1:
            raise InvalidInputError("At least one text is required.")
        self._core.check_count(count)  # before decoding: an over-long batch reads nothing
        if tensor.tensor_content or len(tensor.string_val) != count:
            raise InvalidInputError(
                f"Input {INPUT_NAME!r} has shape [{count}] but not {count} string values."
            )
        try:
            texts = [value.decode("utf-8") for value in tensor.string_val]
        except UnicodeDecodeError:
            raise InvalidInputError(f"Input {INPUT_NAME!r} must be UTF-8 text.") from None
        if any(is_blank(text) for text in texts):
            raise InvalidInputError("A text must not be empty or whitespace only.")
        return texts

    @staticmethod
    def _outputs(output_filter: Sequence[str]) -> Sequence[str]:
        """The outputs asked for (all by default), in the order asked."""
        if not output_filter:
            return OUTPUTS
        if any(name not in OUTPUTS for name in output_filter):
            raise InvalidInputError(
                f"output_filter names an output the signature does not have; outputs are "
                f"{', '.join(OUTPUTS)}."
            )
        if len(set(output_filter)) != len(output_filter):
            raise InvalidInputError("output_filter names an output twice.")
        return list(output_filter)

    async def GetModelMetadata(self, request: Any, context: Context) -> Message:
        predictor = self._resolve(request.model_spec)
        fields = list(request.metadata_field)
        if not fields:
            raise InvalidInputError("GetModelMetadataRequest must specify metadata_field.")
        if any(field != _SIGNATURE_DEF_FIELD for field in fields):
            raise InvalidInputError(
                f"Only the metadata field {_SIGNATURE_DEF_FIELD!r} is supported."
            )
        signatures = await self._core.signature_defs(predictor)
        signature_map = json_format.ParseDict(
            {"signature_def": signatures}, get_model_metadata_pb2.SignatureDefMap()
        )
        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=self._model_spec(predictor)
        )
        response.metadata[_SIGNATURE_DEF_FIELD].Pack(signature_map)
        answered_by(predictor)
        return response  # type: ignore[no-any-return]

    async def Classify(self, request: Any, context: Context) -> Message:
        await self._refuse_examples(request.model_spec, _CLASSIFY)
        raise AssertionError("unreachable")  # pragma: no cover

    async def Regress(self, request: Any, context: Context) -> Message:
        await self._refuse_examples(request.model_spec, _REGRESS)
        raise AssertionError("unreachable")  # pragma: no cover

    async def MultiInference(self, request: Any, context: Context) -> Message:
        if not request.tasks:
            raise InvalidInputError("MultiInferenceRequest must have at least one task.")
        for task in request.tasks:
            if task.method_name not in _KINDS:
                raise InvalidInputError(f"A task's method_name must be {_CLASSIFY} or {_REGRESS}.")
        for task in request.tasks:
            await self._refuse_examples(task.model_spec, task.method_name)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _refuse_examples(self, spec: Any, method: str) -> None:
        """TF Serving's answer for a model whose signature is not of ``method``'s kind."""
        predictor = self._resolve(spec)
        signatures = await self._core.signature_defs(predictor)
        signature = signatures.get(spec.signature_name or SIGNATURE_NAME)
        if signature is None:
            raise InvalidInputError("No signature was found with the name given.")
        kind = _KINDS[method]
        found = signature.get("method_name", "")
        if found != method:
            raise InvalidInputError(
                f"Expected {kind} signature method_name to be {method}. Was: {found}"
            )
        # No served version has such a signature; if one ever does, say so rather than guess.
        raise InvalidInputError(f"The {kind} API is not implemented by this server.")

    async def GetModelStatus(self, request: Any, context: Context) -> Message:
        spec = request.model_spec
        statuses = model_version_status(self._protocol, spec.name, version_choice(spec))
        return json_format.ParseDict(  # type: ignore[no-any-return]
            {"model_version_status": statuses}, get_model_status_pb2.GetModelStatusResponse()
        )


def services(protocol: GrpcProtocol) -> list[Service]:
    """The TF Serving services and their methods, for the server to register."""
    servicer = PredictionServicer(protocol)
    prediction = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"]
    models = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"]
    # Touch the request modules so their descriptors are registered before parsing.
    _ = (classification_pb2, regression_pb2, inference_pb2)
    return [
        (
            prediction,
            {
                "Predict": Method(servicer.Predict),
                "GetModelMetadata": Method(servicer.GetModelMetadata),
                "Classify": Method(servicer.Classify),
                "Regress": Method(servicer.Regress),
                "MultiInference": Method(servicer.MultiInference),
            },
        ),
        (models, {"GetModelStatus": Method(servicer.GetModelStatus)}),
    ]
