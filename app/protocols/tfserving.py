"""TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest), for drop-in clients.

Routes under ``/v1/models/{name}``: status, ``/metadata``, ``:predict``, ``:classify`` and
``:regress``, each bare, with ``/versions/{v}`` or with ``/labels/{label}``: each operation is
written once and served in the three forms. The version a request names is resolved once, by
the scoring core: any loaded version, any configured label (``stable`` always exists), and
for the bare routes the ``stable`` version or the canary's share; a version or label that is
not loaded is TF Serving's not-found error (404). Every answer a version produced names it in
an ``X-Model-Version`` header, and the status lists every version with its state (``LOADING``,
``AVAILABLE``, ``UNLOADING``, or ``END`` with the reason a version failed to load). Bodies
follow TF Serving exactly: the row format answers
``{"predictions": [{"probability": [p], "logit": [l]}, ...]}`` and the columnar one
``{"outputs": {"probability": [[p], ...], "logit": [[l], ...]}}`` (named outputs, because the
signature has two), and every error is ``{"error": "<message>"}`` with TF Serving's status
(400 for what TF Serving calls INVALID_ARGUMENT, 404 NOT_FOUND, 503 UNAVAILABLE, ...): the
adapter's error shape, which the app's renderer applies under ``/v1/models``, framework errors
included.

``GET /v1/models/{name}`` is also KServe V1's readiness route, so its body carries KServe's
``name`` and ``ready`` beside TF Serving's ``model_version_status``.

Metadata lists every signature_def of the SavedModel as TF Serving does (read from the
version's ``saved_model.pb``, so a version with more signatures lists them all), in the
protobuf JSON mapping TF Serving prints (int64 as strings, default fields included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response

from app.core.errors import InvalidInputError
from app.core.predictor import Predictor
from app.core.registry import VersionChoice, VersionStatus
from app.http.errors import ErrorShape
from app.protocols.base import (
    BARE,
    BY_LABEL,
    BY_VERSION,
    NotFoundWording,
    ProtocolAdapter,
    RouteSpec,
    VersionedOperation,
    flat_error_shape,
    json_response,
)
from app.protocols.tfserving_schemas import (
    TFServingError,
    TFServingExamplesRequest,
    TFServingMetadataResponse,
    TFServingModelStatusResponse,
    TFServingPredictRequest,
    TFServingPredictResponse,
)
from contract import LOGIT_OUTPUT, PROBABILITY_OUTPUT, SIGNATURE_NAME

PATH_PREFIX = "/v1/models"

_CLASSIFY_METHOD = "tensorflow/serving/classify"
_REGRESS_METHOD = "tensorflow/serving/regress"

# Predict, metadata, classify and regress word a missing servable one way, status another
# (over REST and gRPC alike: app.protocols.grpc.tfserving uses them too).
SERVABLE_NOT_FOUND = NotFoundWording(
    "Servable not found for request: Latest(<unknown model>)",
    "Servable not found for request: Specific({name}, {version})",
    "Servable not found for request: no version of {name} has the requested label",
)
STATUS_NOT_FOUND = NotFoundWording(
    "Could not find any versions of the requested model.",
    "Could not find version {version} of model {name}",
    "Could not find a version of model {name} with the requested label",
)
_FORMS = (BARE, BY_VERSION, BY_LABEL)
_PREDICT_ERRORS = (400, 401, 404, 413, 429, 503)
_READ_ERRORS = (400, 401, 404, 503)


def _status(status: VersionStatus) -> dict[str, Any]:
    """One ``model_version_status`` entry as TF Serving prints it."""
    return {
        "version": str(status.version),
        "state": status.state,
        "status": {
            "error_code": "UNKNOWN" if status.error else "OK",
            "error_message": status.error,
        },
    }


def model_version_status(
    adapter: ProtocolAdapter, name: str, choice: VersionChoice
) -> list[dict[str, Any]]:
    """TF Serving's ``model_version_status`` for ``choice``, in its JSON mapping (REST prints
    it, gRPC parses it into ``GetModelStatusResponse``): every version the service knows, the
    version asked for, or the labelled one; 404 (NOT_FOUND) for a model, version or label
    the service does not know, 503 before anything is loaded."""
    statuses = adapter.core.statuses()
    if choice.version is not None:
        # A version that is loading, unloading or failed has a status too.
        statuses = [status for status in statuses if status.version == choice.version]
        if not statuses or name != adapter.core.model_name:
            adapter.resolve(name, choice, STATUS_NOT_FOUND)  # raises the protocol's 404 (or 503)
    else:
        predictor = adapter.resolve(name, choice, STATUS_NOT_FOUND)  # name, label, readiness
        if choice.label is not None:
            statuses = [status for status in statuses if status.version == predictor.version]
    return [_status(status) for status in statuses]


class TFServingProtocol(ProtocolAdapter):
    """TF Serving's REST API over the scoring core."""

    error_shape: ClassVar[ErrorShape | None] = ErrorShape(PATH_PREFIX, flat_error_shape)

    async def predict(
        self, request: Request, name: str, choice: VersionChoice, body: TFServingPredictRequest
    ) -> Response:
        predictor = self.resolve(name, choice, SERVABLE_NOT_FOUND, self.request_id(request))
        await self._check_signature(predictor, body.signature_name)
        if body.instances is None and body.inputs is None:
            raise InvalidInputError("Missing 'inputs' or 'instances' key")
        if body.instances is not None and body.inputs is not None:
            raise InvalidInputError("Not both 'instances' and 'inputs' can be specified")
        texts = body.texts()
        if not texts:
            raise InvalidInputError("At least one text is required.")
        scores = await self.core.score(texts, predictor)
        version = predictor.version_label
        if body.instances is not None:
            rows = [
                {PROBABILITY_OUTPUT: [p], LOGIT_OUTPUT: [logit]}
                for p, logit in zip(scores.probabilities, scores.logits, strict=True)
            ]
            return json_response({"predictions": rows}, version=version)
        columns = {
            PROBABILITY_OUTPUT: [[p] for p in scores.probabilities],
            LOGIT_OUTPUT: [[logit] for logit in scores.logits],
        }
        return json_response({"outputs": columns}, version=version)

    async def _check_signature(self, predictor: Predictor, name: str | None) -> None:
        """Predict serves ``serving_default`` only; other names get TF Serving's 400."""
        if name in (None, "", SIGNATURE_NAME):
            return
        if name not in await self.core.signature_defs(predictor):
            raise InvalidInputError("Serving signature name not found in signature def.")
        raise InvalidInputError(f"Only the {SIGNATURE_NAME!r} signature is served over REST here.")

    async def classify(
        self, request: Request, name: str, choice: VersionChoice, body: TFServingExamplesRequest
    ) -> Response:
        return await self._examples(_CLASSIFY_METHOD, "classification", name, choice, body)

    async def regress(
        self, request: Request, name: str, choice: VersionChoice, body: TFServingExamplesRequest
    ) -> Response:
        return await self._examples(_REGRESS_METHOD, "regression", name, choice, body)

    async def _examples(
        self,
        method: str,
        kind: str,
        name: str,
        choice: VersionChoice,
        body: TFServingExamplesRequest,
    ) -> Response:
        """Answered as TF Serving answers a model without a signature of that method."""
        predictor = self.resolve(name, choice, SERVABLE_NOT_FOUND)
        signatures = await self.core.signature_defs(predictor)
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

    async def model_status(
        self, request: Request, name: str, choice: VersionChoice, body: None
    ) -> Response:
        answer: dict[str, Any] = {"model_version_status": model_version_status(self, name, choice)}
        if choice.version is None and choice.label is None:  # KServe V1's readiness too
            answer.update(name=self.core.model_name, ready=True)
        return json_response(answer)

    async def metadata(
        self, request: Request, name: str, choice: VersionChoice, body: None
    ) -> Response:
        predictor = self.resolve(name, choice, SERVABLE_NOT_FOUND)
        signatures = await self.core.signature_defs(predictor)
        return json_response(
            {
                "model_spec": {
                    "name": self.core.model_name,
                    "signature_name": "",
                    "version": predictor.version_label,
                },
                "metadata": {"signature_def": {"signature_def": signatures}},
            },
            version=predictor.version_label,
        )

    def routes(self) -> Sequence[RouteSpec]:
        predict_docs = (
            ("predict", "TF Serving predict on the stable version (or the canary's share)."),
            ("predict_version", "TF Serving predict on a given loaded version."),
            (
                "predict_label",
                "TF Serving predict on a labelled version ('stable' always exists).",
            ),
        )
        classify_docs = (
            (
                "classify",
                "TF Serving classify: this model has no classification signature "
                "(400, as TF Serving).",
            ),
            ("classify_version", "TF Serving classify on a given version."),
            ("classify_label", "TF Serving classify on a labelled version."),
        )
        regress_docs = (
            (
                "regress",
                "TF Serving regress: this model has no regression signature (400, as TF Serving).",
            ),
            ("regress_version", "TF Serving regress on a given version."),
            ("regress_label", "TF Serving regress on a labelled version."),
        )
        status_docs = (
            (
                "model_status",
                "TF Serving's status of every version (loading, available, unloading, failed); "
                "also KServe V1's model readiness.",
            ),
            ("model_status_version", "TF Serving's status of one version."),
            ("model_status_label", "TF Serving's status of a labelled version."),
        )
        metadata_docs = (
            (
                "metadata",
                "TF Serving's model metadata: every signature_def with dtypes and shapes.",
            ),
            ("metadata_version", "TF Serving's metadata of one version."),
            ("metadata_label", "TF Serving's metadata of a labelled version."),
        )
        predict, examples = TFServingPredictRequest, TFServingExamplesRequest
        operations = (
            VersionedOperation(
                ":predict",
                "POST",
                self.predict,
                predict,
                TFServingPredictResponse,
                _PREDICT_ERRORS,
                "TF Serving predict",
                predict_docs,
            ),
            VersionedOperation(
                ":classify",
                "POST",
                self.classify,
                examples,
                TFServingError,
                _PREDICT_ERRORS,
                "TF Serving classify",
                classify_docs,
            ),
            VersionedOperation(
                ":regress",
                "POST",
                self.regress,
                examples,
                TFServingError,
                _PREDICT_ERRORS,
                "TF Serving regress",
                regress_docs,
            ),
            VersionedOperation(
                "",
                "GET",
                self.model_status,
                None,
                TFServingModelStatusResponse,
                _READ_ERRORS,
                "TF Serving status, KServe V1",
                status_docs,
            ),
            VersionedOperation(
                "/metadata",
                "GET",
                self.metadata,
                None,
                TFServingMetadataResponse,
                _READ_ERRORS,
                "TF Serving metadata",
                metadata_docs,
            ),
        )
        return self.versioned_routes(
            f"{PATH_PREFIX}/{{name}}",
            _FORMS,
            operations,
            tag="TF Serving REST",
            error_model=TFServingError,
        )
