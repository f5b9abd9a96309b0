"""TF Serving REST bodies (https://www.tensorflow.org/tfx/serving/api_rest), as pydantic models.

Requests are validated by them; responses are built as plain JSON by the adapter
(``app.protocols.tfserving``) and documented by them in OpenAPI.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.protocols.base import EXAMPLE_TEXT, NonBlankText
from contract import SIGNATURE_NAME

# A text: at least one non-whitespace character (the same rule as /v1/predict, in the schema).
ProtocolText = NonBlankText


def _predict_schema_extra(schema: dict[str, Any]) -> None:
    """Examples, and TF Serving's rule in the schema: exactly one of instances or inputs."""
    schema["examples"] = [
        {"instances": [EXAMPLE_TEXT, "Terrible acting, a waste of time."]},
        {"signature_name": SIGNATURE_NAME, "instances": [{"text": EXAMPLE_TEXT}]},
        {"inputs": {"text": [EXAMPLE_TEXT]}},
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
