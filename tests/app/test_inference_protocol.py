"""The Open Inference Protocol (KServe V2) REST routes: shapes, binary data and every error.

The real clients are driven against a real server in test_protocol_clients_e2e.py; these
check the bodies and the error paths directly (status, ``{"error": "<message>"}``, no 5xx).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

TEXTS = ["A wonderful film, I loved it.", "Dull, badly acted and far too long."]
SECRET = "zq-client-chosen-name"
INFER = "/v2/models/sentiment/infer"


def _request(texts: list[str], **extra: Any) -> dict[str, Any]:
    tensor = {"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}
    return {"inputs": [tensor], **extra}


def _assert_protocol_error(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert SECRET not in response.text


def test_server_and_model_routes(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]
    assert client.get("/v2/models/sentiment/ready").json() == {"name": "sentiment", "ready": True}
    assert client.get("/v2/models/sentiment/versions/1/ready").status_code == 200
    metadata = {
        "name": "sentiment",
        "versions": ["1"],
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": "probability", "datatype": "FP32", "shape": [-1, 1]},
            {"name": "logit", "datatype": "FP32", "shape": [-1, 1]},
        ],
    }
    assert client.get("/v2/models/sentiment").content == orjson.dumps(metadata)
    assert client.get("/v2/models/sentiment/versions/1").content == orjson.dumps(metadata)


def test_infer_json_matches_batch_predict_and_honours_id_and_outputs(client: TestClient) -> None:
    expected = [
        p["probability"]
        for p in client.post("/v1/predict/batch", json={"texts": TEXTS}).json()["predictions"]
    ]
    response = client.post(INFER, json=_request(TEXTS, id="req-7"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "sentiment" and body["model_version"] == "1"
    assert body["id"] == "req-7"
    assert [o["name"] for o in body["outputs"]] == ["probability", "logit"]
    for output in body["outputs"]:
        assert output["datatype"] == "FP32" and output["shape"] == [2, 1]
    assert body["outputs"][0]["data"] == pytest.approx(expected, abs=1e-6)

    only_logit = client.post(INFER, json=_request(TEXTS, outputs=[{"name": "logit"}])).json()
    assert [o["name"] for o in only_logit["outputs"]] == ["logit"]
    assert "id" not in only_logit


def test_binary_tensor_data_both_ways(client: TestClient) -> None:
    raw = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in TEXTS)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [2],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    response = client.post(
        INFER,
        content=header + raw,
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "content-type": "application/octet-stream",
        },
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    head = orjson.loads(response.content[:length])
    tail = response.content[length:]
    assert [o["parameters"] for o in head["outputs"]] == [{"binary_data_size": 8}] * 2
    probabilities = np.frombuffer(tail[:8], dtype="<f4")
    json_answer = client.post(INFER, json=_request(TEXTS)).json()
    assert probabilities.tolist() == pytest.approx(json_answer["outputs"][0]["data"], abs=1e-6)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (_request(["fine"], id=5), "id not a string"),
        ({"inputs": []}, "no input"),
        ({}, "no inputs"),
        ([1], "not an object"),
        ({"inputs": [{"name": SECRET, "datatype": "BYTES", "shape": [1], "data": ["a"]}]}, "name"),
        ({"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]}, "type"),
        ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a"]}]}, "count"),
        (
            {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 1], "data": ["a"]}]},
            "rank",
        ),
        ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [0], "data": []}]}, "empty"),
        ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [3]}]}, "number"),
        (_request([" "]), "blank text"),
        (_request(["fine"], outputs=[{"name": SECRET}]), "unknown output"),
        (_request(["fine"], parameters=[1]), "parameters not an object"),
    ],
)
def test_bad_infer_requests_are_400(client: TestClient, body: Any, why: str) -> None:
    _assert_protocol_error(client.post(INFER, json=body), 400)


def test_bad_binary_framing_is_400(client: TestClient) -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "text", "datatype": "BYTES", "shape": [1]}
                | {"parameters": {"binary_data_size": 50}}
            ]
        }
    )
    for length, tail in ((str(len(header)), b"\x05\x00\x00\x00ab"), ("999999", b""), ("x", b"")):
        response = client.post(
            INFER, content=header + tail, headers={"Inference-Header-Content-Length": length}
        )
        _assert_protocol_error(response, 400)
    invalid_utf8 = b"\x02\x00\x00\x00\xff\xfe"
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": len(invalid_utf8)},
                }
            ]
        }
    )
    response = client.post(
        INFER,
        content=header + invalid_utf8,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    _assert_protocol_error(response, 400)
    _assert_protocol_error(
        client.post(INFER, content=b"{not json", headers={"content-type": "application/json"}),
        400,
    )


def test_unknown_model_version_and_route(client: TestClient) -> None:
    _assert_protocol_error(client.post(f"/v2/models/{SECRET}/infer", json=_request(["a"])), 404)
    _assert_protocol_error(
        client.post("/v2/models/sentiment/versions/3/infer", json=_request(["a"])), 404
    )
    _assert_protocol_error(client.get(f"/v2/models/{SECRET}"), 404)
    _assert_protocol_error(client.get(f"/v2/models/{SECRET}/ready"), 404)
    _assert_protocol_error(client.get("/v2/models/sentiment/versions/4/ready"), 404)
    _assert_protocol_error(client.get("/v2/models/sentiment/versions/x"), 400)
    _assert_protocol_error(client.get("/v2/repository/index"), 404)
    _assert_protocol_error(client.get(INFER), 405)


def test_limits_auth_and_not_ready(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = make_settings(max_text_chars=50, max_batch_items=3, max_body_bytes=2048)
    with TestClient(create_app(settings)) as client:
        _assert_protocol_error(client.post(INFER, json=_request(["a"] * 4)), 413)
        _assert_protocol_error(client.post(INFER, json=_request(["x" * 51])), 400)
        _assert_protocol_error(client.post(INFER, json=_request(["y" * 4000])), 413)
    with TestClient(create_app(make_settings(api_key="s3cret"))) as client:
        _assert_protocol_error(client.post(INFER, json=_request(["a"])), 401)
        _assert_protocol_error(client.get("/v2/models/sentiment"), 401)
        assert client.get("/v2/health/ready").status_code == 200  # probes carry no key
        ok = client.post(INFER, json=_request(["a"]), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
    empty = tmp_path / "empty"
    empty.mkdir()
    with TestClient(create_app(Settings(model_base_path=empty, reload_interval_seconds=0))) as c:
        assert c.get("/v2/health/live").status_code == 200
        for response in (
            c.get("/v2/health/ready"),
            c.get("/v2/models/sentiment/ready"),
            c.post(INFER, json=_request(["good"])),
        ):
            _assert_protocol_error(response, 503)
        text = c.get("/metrics").text
        assert 'route="/v2/models/{name}/infer",status="503"' in text
