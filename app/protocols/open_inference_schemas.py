"""The Open Inference Protocol's response bodies and infer request schema, for OpenAPI.

The infer body is parsed by hand (``app.protocols.open_inference``: a binary body is not
JSON), so its schema is stated here as JSON Schema, exactly as the parser accepts it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.texts import TEXT_PATTERN
from contract import INPUT_NAME, LOGIT_OUTPUT, PROBABILITY_OUTPUT

OUTPUT_NAMES = (PROBABILITY_OUTPUT, LOGIT_OUTPUT)


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


class ServerReadyResponse(BaseModel):
    # Its own class name keeps OpenAPI component names free of module paths (the operations
    # routes have a ReadyResponse too); the schema's title stays the protocol's.
    model_config = ConfigDict(title="ReadyResponse")

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
INFER_REQUEST_SCHEMA: dict[str, Any] = {
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
