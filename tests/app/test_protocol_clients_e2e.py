"""The real client libraries, used unchanged, against a real uvicorn server.

tritonclient.http and the KServe SDK's InferenceRESTClient speak the Open Inference
Protocol (and KServe V1, TF Serving's predict) exactly as they would to Triton or KServe;
the TF Serving bodies are checked byte for byte in test_tfserving.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

from bench.servers import HOST, Server, running_server
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.e2e

TEXTS = [
    "A wonderful film with brilliant acting. I loved it.",
    "Dull, badly acted and far too long.",
    "Not bad at all, I would watch it again.",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, source_version_dir: Path) -> Iterator[Server]:
    import shutil

    base = tmp_path_factory.mktemp("protocols") / "sentiment"
    base.mkdir()
    shutil.copytree(source_version_dir, base / "1")
    env = {"SENTIMENT_MODEL_BASE_PATH": str(base), "SENTIMENT_RELOAD_INTERVAL_SECONDS": "0"}
    with running_server("uvicorn", "app.main:create_app", env, REPO_ROOT, "/readyz", 60) as s:
        yield s


@pytest.fixture(scope="module")
def batch_probabilities(server: Server) -> list[float]:
    body = httpx.post(f"{server.url}/v1/predict/batch", json={"texts": TEXTS}, timeout=30).json()
    return [prediction["probability"] for prediction in body["predictions"]]


def test_tritonclient_http(server: Server, batch_probabilities: list[float]) -> None:
    client = triton_http.InferenceServerClient(url=f"{HOST}:{server.port}")
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("sentiment")
        assert not client.is_model_ready("sentiment", model_version="99")
        metadata = client.get_model_metadata("sentiment")
        assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        assert [o["name"] for o in metadata["outputs"]] == ["probability", "logit"]

        text = triton_http.InferInput("text", [len(TEXTS)], "BYTES")
        text.set_data_from_numpy(np.array(TEXTS, dtype=np.object_))  # binary by default
        result = client.infer("sentiment", [text], request_id="r1")
        probability = result.as_numpy("probability")
        assert probability.shape == (3, 1) and probability.dtype == np.float32
        assert probability[:, 0].tolist() == pytest.approx(batch_probabilities, abs=1e-5)
        assert result.as_numpy("logit").shape == (3, 1)
        assert result.get_response()["id"] == "r1"

        as_json = triton_http.InferInput("text", [len(TEXTS)], "BYTES")
        as_json.set_data_from_numpy(np.array(TEXTS, dtype=np.object_), binary_data=False)
        wanted = [triton_http.InferRequestedOutput("probability", binary_data=False)]
        result = client.infer("sentiment", [as_json], outputs=wanted)
        assert result.as_numpy("logit") is None
        assert result.as_numpy("probability")[:, 0].tolist() == pytest.approx(
            batch_probabilities, abs=1e-5
        )

        with pytest.raises(triton_http.InferenceServerException) as raised:
            client.get_model_metadata("no-such-model")
        assert raised.value.status() == "404"
        bad = triton_http.InferInput("text", [1], "FP32")
        bad.set_data_from_numpy(np.array([1.0], dtype=np.float32))
        with pytest.raises(triton_http.InferenceServerException) as raised:
            client.infer("sentiment", [bad])
        assert raised.value.status() == "400"
    finally:
        client.close()


async def _kserve_calls(url: str) -> tuple[object, dict[str, object], object, object]:
    v1 = InferenceRESTClient(RESTConfig(protocol="v1", timeout=30))
    v2 = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    try:
        ready = await v1.is_model_ready(url, "sentiment")
        v1_answer = await v1.infer(url, {"instances": TEXTS}, model_name="sentiment")
        request = InferRequest(
            model_name="sentiment",
            infer_inputs=[InferInput("text", [len(TEXTS)], "BYTES", data=TEXTS)],
        )
        v2_answer = await v2.infer(url, request, model_name="sentiment")
        v2_ready = await v2.is_model_ready(url, "sentiment")
    finally:
        await v1.close()
        await v2.close()
    assert isinstance(v1_answer, dict)
    return ready, v1_answer, v2_answer, v2_ready


def test_kserve_rest_client_v1_and_v2(server: Server, batch_probabilities: list[float]) -> None:
    ready, v1_answer, v2_answer, v2_ready = asyncio.run(_kserve_calls(server.url))
    assert ready is True
    assert v2_ready is True
    predictions = v1_answer["predictions"]
    assert isinstance(predictions, list)
    assert [row["probability"][0] for row in predictions] == pytest.approx(
        batch_probabilities, abs=1e-5
    )
    outputs = {output.name: output for output in v2_answer.outputs}  # type: ignore[attr-defined]
    assert outputs["probability"].shape == [3, 1]
    assert outputs["probability"].as_numpy().reshape(-1).tolist() == pytest.approx(
        batch_probabilities, abs=1e-5
    )


def test_tf_serving_rest_over_http(server: Server, batch_probabilities: list[float]) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        rows = client.post("/v1/models/sentiment:predict", json={"instances": TEXTS}).json()
        assert [r["probability"][0] for r in rows["predictions"]] == pytest.approx(
            batch_probabilities, abs=1e-5
        )
        missing = client.post("/v1/models/sentiment/versions/2:predict", json={"instances": TEXTS})
        assert missing.status_code == 404
        assert missing.json() == {"error": "Servable not found for request: Specific(sentiment, 2)"}
    assert "Traceback" not in server.log()
