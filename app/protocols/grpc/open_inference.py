"""The Open Inference Protocol's gRPC service, ``inference.GRPCInferenceService``.

Messages from the published ``open_inference_grpc.proto`` (``protos/``), compiled at install
time and loaded into a descriptor pool of the server's own (``load_protocol``): clients'
compiled copies of package ``inference`` may share the process (the tests run the app and a
client in one), and protobuf's default pool refuses a second copy. ``ModelInfer`` takes one
BYTES input ``text`` of shape ``[N]``, its elements either in ``contents.bytes_contents`` or in
``raw_input_contents`` (4-byte little-endian length, then the bytes: how tritonclient and the
KServe SDK send them), and answers FP32 ``probability`` and ``logit`` of shape ``[N, 1]`` in
``raw_output_contents`` (little-endian floats, which both clients read), honouring the
``outputs`` selection and echoing ``id``. Request ``parameters`` are accepted and change
nothing (outputs are always raw). ``model_version`` chooses a version like the REST
``/versions/{v}`` routes (without it, the canary's share, sticky on ``x-request-id`` metadata
as REST is on ``X-Request-ID``); ``ModelMetadata`` lists every loaded version, or the one
named, as REST's metadata does. Readiness answers ``ready`` (``ServerReady`` is false while
draining); an unknown model or version is NOT_FOUND, in the REST adapter's words.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from app.core.errors import InvalidInputError, NotReadyError
from app.core.predictor import Predictor
from app.core.registry import VersionChoice
from app.core.texts import is_blank
from app.protocols.grpc.calls import Context, Method, Service, answered_by
from app.protocols.grpc.server import parse_version
from app.protocols.open_inference import NOT_FOUND, PLATFORM, decode_bytes_elements
from app.protocols.open_inference_schemas import OUTPUT_NAMES
from contract import INPUT_NAME, LOGIT_OUTPUT, PROBABILITY_OUTPUT

if TYPE_CHECKING:
    from app.protocols.grpc.server import GrpcProtocol

DESCRIPTOR_SET = "open_inference_grpc.binpb"
SERVICE_NAME = "inference.GRPCInferenceService"


@functools.cache
def load_protocol() -> Any:
    """The protocol's file descriptor, service and message classes (by their proto names, as
    a generated module would hold them), from the compiled descriptor set, in their own pool."""
    compiled = resources.files("app.protocols.grpc._generated") / DESCRIPTOR_SET
    files = descriptor_pb2.FileDescriptorSet.FromString(compiled.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    classes = message_factory.GetMessageClassesForFiles([f.name for f in files.file], pool)
    package = files.file[-1].package + "."
    top_level = {
        name.removeprefix(package): cls
        for name, cls in classes.items()
        if "." not in name.removeprefix(package)
    }
    service = pool.FindServiceByName(SERVICE_NAME)
    return SimpleNamespace(FILE=service.file, SERVICE=service, **top_level)


class InferenceServicer:
    """``GRPCInferenceService`` over the adapter's core."""

    def __init__(self, protocol: GrpcProtocol) -> None:
        self._protocol = protocol
        self._core = protocol.core
        self._pb: Any = load_protocol()

    def _tensor_metadata(self, name: str, datatype: str, shape: Sequence[int]) -> Any:
        return self._pb.ModelMetadataResponse.TensorMetadata(
            name=name, datatype=datatype, shape=shape
        )

    def _resolve(self, name: str, version: str, request_id: str | None = None) -> Predictor:
        choice = VersionChoice(version=parse_version(version))
        return self._protocol.resolve(name, choice, NOT_FOUND, request_id)

    async def ServerLive(self, request: Any, context: Context) -> Any:
        return self._pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Context) -> Any:
        try:
            self._core.check_ready()
        except NotReadyError:
            return self._pb.ServerReadyResponse(ready=False)
        return self._pb.ServerReadyResponse(ready=True)

    async def ModelReady(self, request: Any, context: Context) -> Any:
        answered_by(self._resolve(request.name, request.version))
        return self._pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: Context) -> Any:
        return self._pb.ServerMetadataResponse(
            name="sentiment-service", version=self._protocol.server_version, extensions=[]
        )

    async def ModelMetadata(self, request: Any, context: Context) -> Any:
        predictor = self._resolve(request.name, request.version)
        if request.version:
            versions = [predictor]
            answered_by(predictor)
        else:  # every version: its metrics name none, as REST's bare metadata names none
            versions = self._core.served()
        return self._pb.ModelMetadataResponse(
            name=self._core.model_name,
            versions=[served.version_label for served in versions],
            platform=PLATFORM,
            inputs=[self._tensor_metadata(INPUT_NAME, "BYTES", [-1])],
            outputs=[self._tensor_metadata(output, "FP32", [-1, 1]) for output in OUTPUT_NAMES],
        )

    async def ModelInfer(self, request: Any, context: Context) -> Any:
        request_id = self._protocol.call_request_id(context)
        predictor = self._resolve(request.model_name, request.model_version, request_id)
        texts = self._texts(request)
        outputs = self._outputs(request.outputs)
        scores = await self._core.score(texts, predictor)
        values = {PROBABILITY_OUTPUT: scores.probabilities, LOGIT_OUTPUT: scores.logits}
        answered_by(predictor)
        return self._pb.ModelInferResponse(
            model_name=self._core.model_name,
            model_version=predictor.version_label,
            id=request.id,
            outputs=[
                self._pb.ModelInferResponse.InferOutputTensor(
                    name=name, datatype="FP32", shape=[len(texts), 1]
                )
                for name in outputs
            ],
            raw_output_contents=[
                np.asarray(values[name], dtype="<f4").tobytes() for name in outputs
            ],
        )

    def _texts(self, request: Any) -> list[str]:
        """The texts of the one input, ``text``: BYTES of shape [N], N >= 1."""
        if len(request.inputs) != 1:
            raise InvalidInputError(f"Expected exactly one input, {INPUT_NAME!r}.")
        tensor = request.inputs[0]
        if tensor.name != INPUT_NAME:
            raise InvalidInputError(
                f"Unexpected inference input; the model's input is {INPUT_NAME!r}."
            )
        if tensor.datatype != "BYTES":
            raise InvalidInputError(f"Input {INPUT_NAME!r} must have datatype BYTES.")
        if len(tensor.shape) != 1 or tensor.shape[0] < 1:
            raise InvalidInputError(f"Input {INPUT_NAME!r} must have shape [N] with N >= 1.")
        count = tensor.shape[0]
        self._core.check_count(count)  # before decoding: a declared count over the limit
        contents = tensor.contents
        if request.raw_input_contents:
            if len(request.raw_input_contents) != 1 or contents.ByteSize():
                raise InvalidInputError(
                    "Send the input in raw_input_contents or in contents, not both."
                )
            texts = decode_bytes_elements(request.raw_input_contents[0], count)
        else:
            if any(field.name != "bytes_contents" for field, _ in contents.ListFields()):
                raise InvalidInputError(f"Input {INPUT_NAME!r} must use bytes_contents.")
            try:
                texts = [value.decode("utf-8") for value in contents.bytes_contents]
            except UnicodeDecodeError:
                raise InvalidInputError(f"Input {INPUT_NAME!r} must be UTF-8 text.") from None
        if len(texts) != count:
            raise InvalidInputError(f"Input {INPUT_NAME!r} has shape [{count}] but another count.")
        if any(is_blank(text) for text in texts):
            raise InvalidInputError("A text must not be empty or whitespace only.")
        return texts

    @staticmethod
    def _outputs(
        requested: Sequence[Any],
    ) -> list[str]:
        """The output names asked for (every output by default), in the order asked."""
        if not requested:
            return list(OUTPUT_NAMES)
        names = [output.name for output in requested]
        if any(name not in OUTPUT_NAMES for name in names):
            raise InvalidInputError(f"Unexpected inference output; outputs are {OUTPUT_NAMES}.")
        return names


def services(protocol: GrpcProtocol) -> list[Service]:
    """The Open Inference Protocol's service and its methods, for the server to register."""
    servicer = InferenceServicer(protocol)
    return [
        (
            load_protocol().SERVICE,
            {
                # Liveness and readiness stay open, like /v2/health/live and /ready.
                "ServerLive": Method(servicer.ServerLive, guarded=False),
                "ServerReady": Method(servicer.ServerReady, guarded=False),
                "ModelReady": Method(servicer.ModelReady),
                "ServerMetadata": Method(servicer.ServerMetadata),
                "ModelMetadata": Method(servicer.ModelMetadata),
                "ModelInfer": Method(servicer.ModelInfer),
            },
        )
    ]
