"""Several versions at once over gRPC (issues 25 and 26): what REST answers, gRPC answers too.

One real server (``python -m app``, one worker) serves copies of the smallest shipped version
as 1 (``stable``) and 2 (``canary``, with a canary share), beside a broken version 3 that
fails to load, so the statuses hold every state a version can end in. Each gRPC answer is
compared by value with the REST answer to the same question. TF Serving's generated stubs run
in this process; tritonclient.grpc runs in a process of its own (``python -m
tests.app.test_grpc_versions``), as in tests/app/test_grpc.py, since it registers protobuf
package ``inference`` and another client in the suite does too.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.servers import Server
from tests.app.conftest import publish_version, tamper_sample
from tests.app.test_grpc import client_answer, grpc_server, rpc_error
from tests.paths import SHIPPED_MODEL_BASE

pytestmark = pytest.mark.e2e

CANARY_PERCENT = 20
CALL_SECONDS = 30
REQUEST_IDS = [f"grpc-{i}" for i in range(1000)]
CHECKED_IDS = REQUEST_IDS[:50]  # sent over REST and from tritonclient too


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """Versions 1 (stable) and 2 (canary) serving, 3 refused: (server, gRPC address)."""
    base = tmp_path_factory.mktemp("grpc-versions") / "sentiment"
    base.mkdir()
    smallest = SHIPPED_MODEL_BASE / "1"
    publish_version(base, smallest, 1)
    publish_version(base, smallest, 2)
    publish_version(base, smallest, 3, tamper_sample)  # fails its card check: END
    settings = {
        "SENTIMENT_MODEL_VERSION_POLICY": "all",
        "SENTIMENT_MODEL_VERSION_LABELS": "stable=1,canary=2",
        "SENTIMENT_CANARY_PERCENT": str(CANARY_PERCENT),
    }
    with grpc_server("grpc-versions", base, settings) as served:
        yield served


@pytest.fixture(scope="module")
def channel(served: tuple[Server, str]) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(served[1]) as opened:
        grpc.channel_ready_future(opened).result(timeout=CALL_SECONDS)
        yield opened


def _spec(request: Any, version: int | None = None, label: str | None = None) -> Any:
    """``request`` with its model_spec naming the model, and ``version`` or ``label``."""
    request.model_spec.name = "sentiment"
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    return request


def _predict_request(texts: list[str], **choice: Any) -> Any:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = _spec(predict_pb2.PredictRequest(), **choice)
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts))
    return request


def _rest_predict_version(url: str, request_id: str) -> str:
    answer = httpx.post(
        f"{url}/v1/predict",
        json={"text": "A fine film."},
        headers={"X-Request-ID": request_id},
        timeout=CALL_SECONDS,
    )
    assert answer.status_code == 200, answer.text
    return answer.headers["x-model-version"]


@pytest.fixture(scope="module")
def triton(served: tuple[Server, str]) -> dict[str, Any]:
    """tritonclient.grpc's answers (``triton_calls``), from a process of its own."""
    return client_answer("tests.app.test_grpc_versions", served[1], *CHECKED_IDS)


def test_the_same_request_id_reaches_the_same_version_as_over_rest(
    served: tuple[Server, str], channel: grpc.Channel, triton: dict[str, Any]
) -> None:
    """Unversioned calls with ``x-request-id`` metadata: the canary takes its share of ids,
    each id always reaches one version, the one REST's ``X-Request-ID`` reaches."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = _predict_request(["A fine film."])

    def version(request_id: str) -> str:
        metadata = (("x-request-id", request_id),)
        answer = stub.Predict(request, metadata=metadata, timeout=CALL_SECONDS)
        return str(answer.model_spec.version.value)

    chosen = {request_id: version(request_id) for request_id in REQUEST_IDS}
    canary_share = list(chosen.values()).count("2") / 10
    assert abs(canary_share - CANARY_PERCENT) <= 4, canary_share
    assert set(chosen.values()) == {"1", "2"}
    retried = list(chosen)[:200]
    for _ in range(3):
        assert [version(request_id) for request_id in retried] == [chosen[i] for i in retried]
    rest = [_rest_predict_version(served[0].url, request_id) for request_id in CHECKED_IDS]
    assert rest == [chosen[i] for i in CHECKED_IDS]

    # The Open Inference Protocol's ModelInfer, from tritonclient with the id as a header.
    assert triton["infer_versions"] == [chosen[i] for i in CHECKED_IDS]


def _proto_json(message: Any) -> dict[str, Any]:
    """A message in protobuf's JSON mapping as TF Serving's REST API prints it."""
    from google.protobuf import json_format

    printed: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return printed


def test_model_status_lists_every_version_with_its_state_as_rest_does(
    served: tuple[Server, str], channel: grpc.Channel
) -> None:
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    url = f"{served[0].url}/v1/models/sentiment"

    def status(**choice: Any) -> Any:
        request = _spec(get_model_status_pb2.GetModelStatusRequest(), **choice)
        return stub.GetModelStatus(request, timeout=CALL_SECONDS)

    everything = _proto_json(status())["model_version_status"]
    states = [(entry["version"], entry["state"]) for entry in everything]
    assert states == [("3", "END"), ("2", "AVAILABLE"), ("1", "AVAILABLE")]
    assert everything[0]["status"]["error_code"] == "UNKNOWN"
    assert everything[0]["status"]["error_message"]  # why version 3 was refused
    forms: dict[str, dict[str, Any]] = {
        "": {},
        "/versions/1": {"version": 1},
        "/versions/2": {"version": 2},
        "/versions/3": {"version": 3},
        "/labels/stable": {"label": "stable"},
        "/labels/canary": {"label": "canary"},
    }
    for path, choice in forms.items():
        rest = httpx.get(f"{url}{path}", timeout=CALL_SECONDS)
        assert rest.status_code == 200, (path, rest.text)
        answer = _proto_json(status(**choice))
        assert answer == {"model_version_status": rest.json()["model_version_status"]}, path
    assert len(_proto_json(status(label="canary"))["model_version_status"]) == 1

    missing: dict[str, dict[str, Any]] = {
        "/versions/5": {"version": 5},
        "/labels/beta": {"label": "beta"},
    }
    for path, choice in missing.items():
        rest = httpx.get(f"{url}{path}", timeout=CALL_SECONDS)
        assert rest.status_code == 404, path
        code, details = rpc_error(functools.partial(status, **choice))
        assert (code, details) == (grpc.StatusCode.NOT_FOUND, rest.json()["error"]), path
    other = _spec(get_model_status_pb2.GetModelStatusRequest())
    other.model_spec.name = "other"
    rest = httpx.get(f"{served[0].url}/v1/models/other", timeout=CALL_SECONDS)
    code, details = rpc_error(lambda: stub.GetModelStatus(other, timeout=CALL_SECONDS))
    assert (code, details) == (grpc.StatusCode.NOT_FOUND, rest.json()["error"])


def _described(metadata: dict[str, Any]) -> dict[str, Any]:
    """Model metadata with its shapes as numbers (protobuf's JSON prints int64 as strings)."""
    tensors = {
        kind: [{**tensor, "shape": [int(size) for size in tensor["shape"]]} for tensor in found]
        for kind in ("inputs", "outputs")
        for found in [metadata[kind]]
    }
    return {**metadata, **tensors}


def test_model_metadata_lists_every_loaded_version_as_rest_does(
    served: tuple[Server, str], triton: dict[str, Any]
) -> None:
    url = f"{served[0].url}/v2/models/sentiment"
    everything = httpx.get(url, timeout=CALL_SECONDS).json()
    assert everything["versions"] == ["2", "1"]  # loaded ones: not the refused 3
    assert _described(triton["metadata"]) == _described(everything)
    one = httpx.get(f"{url}/versions/1", timeout=CALL_SECONDS).json()
    assert one["versions"] == ["1"]
    assert _described(triton["metadata_version_1"]) == _described(one)
    missing = httpx.get(f"{url}/versions/3", timeout=CALL_SECONDS)
    assert missing.status_code == 404
    assert triton["metadata_version_3"] == ["StatusCode.NOT_FOUND", missing.json()["error"]]


def _samples(url: str, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """Every sample of ``name`` in the server's /metrics, by the values of ``labels``."""
    found: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sample.labels[label] for label in labels)] = sample.value
    return found


def _grew(before: dict[tuple[str, ...], float], after: dict[tuple[str, ...], float]) -> Any:
    return {
        key: after[key] - before.get(key, 0.0) for key in after if after[key] != before.get(key)
    }


PREDICT = "/tensorflow.serving.PredictionService/Predict"
METADATA = "/tensorflow.serving.PredictionService/GetModelMetadata"
STATUS = "/tensorflow.serving.ModelService/GetModelStatus"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
MODEL_READY = "/inference.GRPCInferenceService/ModelReady"


def test_grpc_request_metrics_carry_the_version_that_answered(
    served: tuple[Server, str], channel: grpc.Channel
) -> None:
    """As REST's request metrics do: the answering version, "" where no version answered."""
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        prediction_service_pb2_grpc,
    )

    from app.protocols.grpc.open_inference import load_protocol

    url = served[0].url

    def calls() -> dict[tuple[str, ...], float]:
        return _samples(url, "sentiment_grpc_requests_total", "method", "code", "version")

    def latencies() -> dict[tuple[str, ...], float]:
        return _samples(url, "sentiment_grpc_request_duration_seconds_count", "method", "version")

    def rest_requests() -> dict[tuple[str, ...], float]:
        labels = ("route", "method", "status", "version")
        return _samples(url, "sentiment_http_requests_total", *labels)

    before = calls(), latencies(), rest_requests()

    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    for choice in ({"version": 2}, {"version": 2}, {"label": "stable"}):
        stub.Predict(_predict_request(["A fine film."], **choice), timeout=CALL_SECONDS)
    with pytest.raises(grpc.RpcError):
        stub.Predict(_predict_request(["A fine film."], version=5), timeout=CALL_SECONDS)
    metadata = _spec(get_model_metadata_pb2.GetModelMetadataRequest(), version=2)
    metadata.metadata_field.append("signature_def")
    stub.GetModelMetadata(metadata, timeout=CALL_SECONDS)
    status = _spec(get_model_status_pb2.GetModelStatusRequest())
    model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status, timeout=CALL_SECONDS)
    # The Open Inference Protocol with the server's own message classes (tritonclient's would
    # clash with another client's in this process).
    v2 = load_protocol()
    infer = channel.unary_unary(
        MODEL_INFER,
        request_serializer=v2.ModelInferRequest.SerializeToString,
        response_deserializer=v2.ModelInferResponse.FromString,
    )
    text = v2.ModelInferRequest.InferInputTensor(
        name="text",
        datatype="BYTES",
        shape=[1],
        contents=v2.InferTensorContents(bytes_contents=[b"Fine."]),
    )
    infer(
        v2.ModelInferRequest(model_name="sentiment", model_version="1", inputs=[text]),
        timeout=CALL_SECONDS,
    )
    ready = channel.unary_unary(
        MODEL_READY,
        request_serializer=v2.ModelReadyRequest.SerializeToString,
        response_deserializer=v2.ModelReadyResponse.FromString,
    )
    assert ready(v2.ModelReadyRequest(name="sentiment", version="2"), timeout=CALL_SECONDS).ready
    rest = httpx.post(
        f"{url}/v1/models/sentiment/versions/2:predict",
        json={"instances": ["Fine."]},
        timeout=CALL_SECONDS,
    )
    assert rest.status_code == 200

    assert _grew(before[0], calls()) == {
        (PREDICT, "OK", "2"): 2,
        (PREDICT, "OK", "1"): 1,
        (PREDICT, "NOT_FOUND", ""): 1,
        (METADATA, "OK", "2"): 1,
        (STATUS, "OK", ""): 1,
        (MODEL_INFER, "OK", "1"): 1,
        (MODEL_READY, "OK", "2"): 1,
    }
    assert _grew(before[1], latencies()) == {
        (PREDICT, "2"): 2,
        (PREDICT, "1"): 1,
        (PREDICT, ""): 1,
        (METADATA, "2"): 1,
        (STATUS, ""): 1,
        (MODEL_INFER, "1"): 1,
        (MODEL_READY, "2"): 1,
    }
    # REST's request metrics, for the same kind of answer, carry the same version.
    rest_route = ("/v1/models/{name}/versions/{version}:predict", "POST", "200", "2")
    rest_grew = _grew(before[2], rest_requests())
    assert {key: n for key, n in rest_grew.items() if key[0] != "/metrics"} == {rest_route: 1}


def triton_calls(address: str, request_ids: list[str]) -> dict[str, Any]:
    """What tritonclient.grpc gets: the model's metadata (all versions, version 1, version 3)
    and one unversioned ModelInfer per request id (sent as ``x-request-id``); run as
    ``python -m tests.app.test_grpc_versions ADDRESS ID...``."""
    import numpy as np
    import tritonclient.grpc as triton_grpc  # type: ignore[import-untyped]

    client = triton_grpc.InferenceServerClient(url=address)
    try:
        try:
            client.get_model_metadata("sentiment", model_version="3")
            missing: list[str] = []
        except triton_grpc.InferenceServerException as exc:
            missing = [str(exc.status()), str(exc.message())]
        text = triton_grpc.InferInput("text", [1], "BYTES")
        text.set_data_from_numpy(np.array(["A fine film."], dtype=np.object_))
        versions = [
            client.infer("sentiment", [text], headers={"x-request-id": request_id})
            .get_response()
            .model_version
            for request_id in request_ids
        ]
        return {
            "infer_versions": versions,
            "metadata": client.get_model_metadata("sentiment", as_json=True),
            "metadata_version_1": client.get_model_metadata("sentiment", "1", as_json=True),
            "metadata_version_3": missing,
        }
    finally:
        client.close()


if __name__ == "__main__":
    target, *given = sys.argv[1:]
    sys.stdout.write(json.dumps(triton_calls(target, given)) + "\n")
