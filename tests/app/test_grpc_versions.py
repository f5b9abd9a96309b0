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

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from bench.servers import HOST, SERVICE, Server, free_port, running_server
from tests.app.conftest import publish_version, tamper_sample
from tests.paths import REPO_ROOT, SHIPPED_MODEL_BASE

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
    grpc_port = free_port()
    env = {
        "SENTIMENT_MODEL_BASE_PATH": str(base),
        "SENTIMENT_RELOAD_INTERVAL_SECONDS": "0",
        "SENTIMENT_WORKERS": "1",
        "SENTIMENT_GRPC_PORT": str(grpc_port),
        "SENTIMENT_MODEL_VERSION_POLICY": "all",
        "SENTIMENT_MODEL_VERSION_LABELS": "stable=1,canary=2",
        "SENTIMENT_CANARY_PERCENT": str(CANARY_PERCENT),
    }
    with running_server("grpc-versions", SERVICE, env, REPO_ROOT, "/readyz", 90) as server:
        yield server, f"{HOST}:{grpc_port}"


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
    done = subprocess.run(
        [sys.executable, "-m", "tests.app.test_grpc_versions", served[1], *CHECKED_IDS],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


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


def _rpc_error(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), str(raised.value.details())


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
        code, details = _rpc_error(lambda choice=choice: status(**choice))
        assert (code, details) == (grpc.StatusCode.NOT_FOUND, rest.json()["error"]), path
    other = _spec(get_model_status_pb2.GetModelStatusRequest())
    other.model_spec.name = "other"
    rest = httpx.get(f"{served[0].url}/v1/models/other", timeout=CALL_SECONDS)
    code, details = _rpc_error(lambda: stub.GetModelStatus(other, timeout=CALL_SECONDS))
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
