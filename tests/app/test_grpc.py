"""gRPC beside REST: the real clients, unchanged, against a real server; errors; health.

tritonclient.grpc and the KServe SDK run in processes of their own (tests/app/grpc_clients.py:
both define protobuf package ``inference``); TF Serving's generated stubs (the pinned
tensorflow-serving-api wheel), gRPC health and reflection are called from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from app.core.batcher import REQUEST_PROTOCOL, MicroBatcher
from app.core.input_metrics import InputBatch, InputMetrics
from app.main import create_app
from app.metrics import DeferredObservations
from app.settings import Settings
from bench.servers import HOST, SERVICE, Server, free_port, running_server
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.e2e

TEXTS = [
    "A wonderful film with brilliant acting. I loved it.",
    "Dull, badly acted and far too long.",
    "Not bad at all, I would watch it again.",
]
SECRET = "zq-grpc-secret-review"
SERVICES = {
    "tensorflow.serving.PredictionService",
    "tensorflow.serving.ModelService",
    "inference.GRPCInferenceService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
}


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, source_version_dir: Path
) -> Iterator[tuple[Server, str]]:
    """``python -m app`` (one worker) with gRPC on a free port: (server, gRPC address)."""
    base = tmp_path_factory.mktemp("grpc") / "sentiment"
    base.mkdir()
    shutil.copytree(source_version_dir, base / "1")
    with grpc_server("grpc", base, {"SENTIMENT_ACCESS_LOG": "true"}) as served:
        yield served


@contextlib.contextmanager
def grpc_server(name: str, base: Path, settings: Mapping[str, str]) -> Iterator[tuple[Server, str]]:
    """``python -m app`` (one worker) serving ``base``, gRPC on a free port, with these
    ``SENTIMENT_*`` settings too: (server, gRPC address), once ready."""
    grpc_port = free_port()
    env = {
        "SENTIMENT_MODEL_BASE_PATH": str(base),
        "SENTIMENT_RELOAD_INTERVAL_SECONDS": "0",
        "SENTIMENT_WORKERS": "1",
        "SENTIMENT_GRPC_PORT": str(grpc_port),
        **settings,
    }
    with running_server(name, SERVICE, env, REPO_ROOT, "/readyz", 90) as server:
        yield server, f"{HOST}:{grpc_port}"


@pytest.fixture(scope="module")
def channel(served: tuple[Server, str]) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(served[1]) as opened:
        grpc.channel_ready_future(opened).result(timeout=30)
        yield opened


@pytest.fixture(scope="module")
def batch_probabilities(served: tuple[Server, str]) -> list[float]:
    body = httpx.post(f"{served[0].url}/v1/predict/batch", json={"texts": TEXTS}, timeout=30).json()
    return [prediction["probability"] for prediction in body["predictions"]]


def client_answer(module: str, *arguments: str) -> dict[str, Any]:
    """What a client prints last as JSON, run as ``python -m module arguments...`` in a
    process of its own (tritonclient.grpc and kserve clash in one process)."""
    done = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def _client(name: str, address: str) -> dict[str, Any]:
    return client_answer("tests.app.grpc_clients", name, address, *TEXTS)


def test_tritonclient_grpc(served: tuple[Server, str], batch_probabilities: list[float]) -> None:
    answer = _client("triton", served[1])
    assert answer["live"] is True
    assert answer["ready"] is True
    assert answer["model_ready"] is True
    assert answer["metadata"]["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": ["-1"]}]
    assert [output["name"] for output in answer["metadata"]["outputs"]] == ["probability", "logit"]
    assert answer["dtype"] == "float32"
    assert [row[0] for row in answer["probability"]] == pytest.approx(batch_probabilities, abs=1e-5)
    assert len(answer["logit"]) == len(TEXTS)
    assert answer["id"] == "r1"
    assert answer["version"] == "1"
    assert answer["only_logit"] is None  # outputs selection: probability only
    assert answer["unknown_version"] == "StatusCode.NOT_FOUND"


def test_kserve_grpc_client(served: tuple[Server, str], batch_probabilities: list[float]) -> None:
    answer = _client("kserve", served[1])
    assert answer["model_ready"] is True
    assert answer["server_ready"] is True
    assert answer["shape"] == [3, 1]
    assert answer["probability"] == pytest.approx(batch_probabilities, abs=1e-5)


def _predict_request(texts: list[Any], **spec: Any) -> Any:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec.pop("name", "sentiment")
    if "version" in spec:
        request.model_spec.version.value = spec.pop("version")
    if "label" in spec:
        request.model_spec.version_label = spec.pop("label")
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts))
    request.output_filter.extend(spec.pop("output_filter", []))
    return request


def _outputs(response: Any) -> dict[str, list[float]]:
    import tensorflow as tf

    return {
        name: tf.make_ndarray(tensor)[:, 0].tolist() for name, tensor in response.outputs.items()
    }


def test_tf_serving_stubs(channel: grpc.Channel, batch_probabilities: list[float]) -> None:
    from tensorflow_serving.apis import (
        classification_pb2,
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        prediction_service_pb2_grpc,
    )

    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(_predict_request(TEXTS), timeout=30)
    outputs = _outputs(response)
    assert set(outputs) == {"probability", "logit"}
    assert outputs["probability"] == pytest.approx(batch_probabilities, abs=1e-5)
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    filtered = _outputs(stub.Predict(_predict_request(TEXTS, output_filter=["logit"]), timeout=30))
    assert set(filtered) == {"logit"}
    for spec in ({"version": 1}, {"label": "stable"}):
        pinned = _outputs(stub.Predict(_predict_request(TEXTS, **spec), timeout=30))
        assert pinned["probability"] == pytest.approx(batch_probabilities, abs=1e-5)

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "sentiment"
    metadata = stub.GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert metadata.metadata["signature_def"].Unpack(signatures)
    serving = signatures.signature_def["serving_default"]
    assert serving.method_name == "tensorflow/serving/predict"
    assert dict(serving.inputs)["text"].dtype == 7  # DT_STRING
    assert set(serving.outputs) == {"probability", "logit"}
    assert metadata.model_spec.version.value == 1

    models = model_service_pb2_grpc.ModelServiceStub(channel)
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "sentiment"
    status = models.GetModelStatus(status_request, timeout=30).model_version_status
    assert [(s.version, s.state) for s in status] == [(1, 30)]  # AVAILABLE

    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "sentiment"
    with pytest.raises(grpc.RpcError) as raised:
        stub.Classify(classify, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == (
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict"
    )


def test_health_and_reflection(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", *SERVICES):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.RpcError) as raised:
        health.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (answer,) = list(reflection.ServerReflectionInfo(iter([request]), timeout=10))
    assert {s.name for s in answer.list_services_response.service} == SERVICES
    by_symbol = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="inference.GRPCInferenceService"
    )
    (found,) = list(reflection.ServerReflectionInfo(iter([by_symbol]), timeout=10))
    assert found.file_descriptor_response.file_descriptor_proto


def rpc_error(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    """The status code and details of the error ``call`` ends with."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), raised.value.details() or ""


def test_errors_have_their_status_and_message_and_the_server_keeps_serving(
    served: tuple[Server, str], channel: grpc.Channel
) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    invalid = grpc.StatusCode.INVALID_ARGUMENT

    def predict(request: Any) -> Any:
        return stub.Predict(request, timeout=30)

    wrong_dtype = _predict_request([SECRET])
    wrong_dtype.inputs["text"].CopyFrom(tf.make_tensor_proto([1.0]))
    wrong_shape = _predict_request([SECRET])
    wrong_shape.inputs["text"].CopyFrom(tf.make_tensor_proto([[SECRET, SECRET]]))
    empty = _predict_request([SECRET])
    empty.inputs["text"].CopyFrom(tf.make_tensor_proto([], dtype=tf.string))
    cases = {
        "wrong dtype": (wrong_dtype, invalid, "must be a DT_STRING tensor, not DT_FLOAT"),
        "wrong shape": (wrong_shape, invalid, "must have shape [N]"),
        "empty batch": (empty, invalid, "At least one text is required."),
        "too many": (
            _predict_request([SECRET] * 257),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "At most 256 texts per request.",
        ),
        "over-long": (
            _predict_request([SECRET + "x" * 20_000]),
            invalid,
            "A text is longer than 20000 characters.",
        ),
        "NUL": (_predict_request([SECRET + "\x00"]), invalid, "NUL"),
        "blank": (_predict_request(["  "]), invalid, "empty or whitespace only"),
        "unknown model": (
            _predict_request([SECRET], name="other"),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(<unknown model>)",
        ),
        "unknown version": (
            _predict_request([SECRET], version=99),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Specific(sentiment, 99)",
        ),
        "unknown label": (
            _predict_request([SECRET], label="nope"),
            grpc.StatusCode.NOT_FOUND,
            "label",
        ),
        "unknown output": (
            _predict_request([SECRET], output_filter=["nope"]),
            invalid,
            "output_filter",
        ),
    }
    for name, (request, code, message) in cases.items():
        got_code, details = rpc_error(lambda request=request: predict(request))
        assert (got_code, name) == (code, name), details
        assert message in details, (name, details)
        assert SECRET not in details

    oversize = _predict_request(["x" * (5 * 1024 * 1024)])
    code, details = rpc_error(lambda: predict(oversize))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details

    garbage = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
    code, details = rpc_error(lambda: garbage(b"\xff\xff\xff", timeout=10))
    assert code == invalid, details

    assert _outputs(predict(_predict_request(TEXTS)))["probability"]  # still serving
    log = served[0].log()
    assert SECRET not in log
    assert "Traceback" not in log
    assert '"gRPC /tensorflow.serving.PredictionService/Predict" INVALID_ARGUMENT' in log


@pytest.fixture
def keyed_app(make_settings: Callable[..., Settings]) -> Iterator[tuple[TestClient, str]]:
    """An app in this process with an API key and gRPC on a free port."""
    port = free_port()
    app = create_app(make_settings(api_key="s3cret", grpc_port=port))
    with TestClient(app) as client:
        yield client, f"{HOST}:{port}"


def test_api_key_is_required_in_metadata_and_health_follows_readiness(
    keyed_app: tuple[TestClient, str],
) -> None:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    client, address = keyed_app
    with grpc.insecure_channel(address) as opened:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(opened)
        request = _predict_request(TEXTS)
        for metadata in ((), (("x-api-key", "wrong"),), (("authorization", "Bearer wrong"),)):
            code, details = rpc_error(
                lambda m=metadata: stub.Predict(request, metadata=m, timeout=30)
            )
            assert code == grpc.StatusCode.UNAUTHENTICATED
            assert details == "A valid API key is required."
        for metadata in ((("x-api-key", "s3cret"),), (("authorization", "Bearer s3cret"),)):
            assert stub.Predict(request, metadata=metadata, timeout=30).outputs

        health = health_pb2_grpc.HealthStub(opened)  # open, like /readyz
        check = health_pb2.HealthCheckRequest()
        assert health.Check(check, timeout=10).status == health_pb2.HealthCheckResponse.SERVING
        core = client.app.state.core  # type: ignore[attr-defined]
        core.start_draining()  # what SIGTERM does first
        assert health.Check(check, timeout=10).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert client.get("/readyz").status_code == 503
        # Draining: requests already arriving are still answered until the server stops.
        assert stub.Predict(request, metadata=(("x-api-key", "s3cret"),), timeout=30).outputs


def test_health_before_the_model_is_loaded(tmp_path: Path, source_version_dir: Path) -> None:
    """No gRPC listener before the model is live (as HTTP): a probe fails, then serves."""
    base = tmp_path / "sentiment"
    base.mkdir()
    shutil.copytree(source_version_dir, base / "1")
    grpc_port = free_port()
    env = {
        "SENTIMENT_MODEL_BASE_PATH": str(base),
        "SENTIMENT_RELOAD_INTERVAL_SECONDS": "0",
        "SENTIMENT_WORKERS": "1",
        "SENTIMENT_GRPC_PORT": str(grpc_port),
    }
    from bench.servers import start_server, stop_server

    server = start_server("grpc-start", SERVICE, env, REPO_ROOT)
    try:
        with grpc.insecure_channel(f"{HOST}:{grpc_port}") as opened:
            health = health_pb2_grpc.HealthStub(opened)
            code, _ = rpc_error(lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=1))
            assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            answer = health.Check(health_pb2.HealthCheckRequest(), timeout=90, wait_for_ready=True)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        stop_server(server)


def _input_texts(url: str) -> dict[str, float]:
    """Texts observed by the input metrics so far, by protocol."""
    counted: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "sentiment_input_tokens_count":
                protocol = sample.labels["protocol"]
                counted[protocol] = counted.get(protocol, 0.0) + sample.value
    return counted


def test_input_metrics_carry_the_protocol(
    served: tuple[Server, str], channel: grpc.Channel
) -> None:
    """REST and gRPC requests sent at once (so batches mix) are observed by protocol, exactly."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = _predict_request(TEXTS)
    url = served[0].url
    before = _input_texts(url)

    def rest(_: int) -> int:
        reply = httpx.post(f"{url}/v1/predict", json={"text": TEXTS[0]}, timeout=30)
        return reply.status_code

    def call(_: int) -> int:
        return len(stub.Predict(request, timeout=30).outputs)

    with ThreadPoolExecutor(16) as pool:
        rest_answers = pool.map(rest, range(40))
        grpc_answers = pool.map(call, range(40))
        assert set(rest_answers) == {200} and set(grpc_answers) == {2}
    after = _input_texts(url)
    assert after["rest"] - before.get("rest", 0.0) == 40
    assert after["grpc"] - before.get("grpc", 0.0) == 40 * len(TEXTS)


def test_a_batch_mixing_protocols_is_observed_by_protocol() -> None:
    """One model call holding REST and gRPC requests: each text counts under its protocol."""
    registry = CollectorRegistry()
    deferred = DeferredObservations()
    observe = InputMetrics(registry, deferred).observer("1")

    def score(model: str, texts: list[str]) -> Any:
        count = len(texts)
        token_counts = np.array([len(text) for text in texts], dtype=np.int64)
        observe(
            InputBatch(
                np.full(count, 0.5, np.float32),
                token_counts,
                np.zeros(count, np.int64),
                np.zeros(count, np.bool_),
            )
        )
        return np.zeros((count, 2), np.float32)

    async def submit(batcher: MicroBatcher[str], protocol: str, texts: list[str]) -> None:
        REQUEST_PROTOCOL.set(protocol)  # in this task's context only, as a gRPC call does
        await batcher.submit("model", texts)

    async def scenario() -> None:
        batcher = MicroBatcher(score, max_batch_size=64, queue_size=16)
        batcher.start()
        await asyncio.gather(  # submitted in one loop iteration: one batch
            submit(batcher, "rest", ["a"]),
            submit(batcher, "grpc", ["bb", "bb"]),
            submit(batcher, "rest", ["ccc"]),
            submit(batcher, "grpc", ["dddd"]),
        )
        await batcher.drain(5)

    asyncio.run(scenario())
    deferred.flush()

    def value(name: str, protocol: str) -> float | None:
        labels = {"version": "1", "protocol": protocol}
        return registry.get_sample_value(name, labels)

    assert value("sentiment_input_tokens_count", "rest") == 2
    assert value("sentiment_input_tokens_sum", "rest") == 1 + 3
    assert value("sentiment_input_tokens_count", "grpc") == 3
    assert value("sentiment_input_tokens_sum", "grpc") == 2 + 2 + 4
