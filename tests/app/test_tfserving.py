"""TF Serving's REST API, byte for byte in the shapes its documentation gives.

https://www.tensorflow.org/tfx/serving/api_rest: row format answers ``predictions`` (named
outputs, as this signature has two), columnar answers ``outputs``, status and metadata are
the JSON of GetModelStatusResponse and GetModelMetadataResponse, and every error is
``{"error": "<message>"}``. Each expected body is written out here; the numbers come from
our own /v1/predict/batch for the same texts (and the logit from the probability's inverse).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from contract import (
    EXPLAIN_OUTPUT_NAMES,
    EXPLAIN_SIGNATURE_NAME,
    INPUT_NAME,
    SCORE_OUTPUT_NAMES,
    SCORE_SIGNATURE_NAME,
    SIGNATURE_NAME,
)

TEXTS = ["A wonderful film, I loved it.", "Dull, badly acted and far too long."]
SECRET = "zq-client-chosen-name"


def _probabilities(client: TestClient, texts: list[str]) -> list[float]:
    body = client.post("/v1/predict/batch", json={"texts": texts}).json()
    return [prediction["probability"] for prediction in body["predictions"]]


def _assert_protocol_error(response: Any, status: int, message: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    if message is not None:
        assert response.content == orjson.dumps({"error": message})
    assert SECRET not in response.text


def _numbers(response: Any) -> tuple[list[float], list[float]]:
    body = response.json()
    if "predictions" in body:
        rows = body["predictions"]
        return [r["probability"][0] for r in rows], [r["logit"][0] for r in rows]
    columns = body["outputs"]
    return [c[0] for c in columns["probability"]], [c[0] for c in columns["logit"]]


def _check_logits(probabilities: list[float], logits: list[float]) -> None:
    # The logit is the model's own output; the probability is its calibrated sigmoid, so
    # they agree in sign (P >= 0.5 exactly when the logit is >= 0).
    for p, logit in zip(probabilities, logits, strict=True):
        assert math.isfinite(logit)
        assert (p >= 0.5) == (logit >= 0)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/sentiment:predict",
        "/v1/models/sentiment/versions/1:predict",
        "/v1/models/sentiment/labels/stable:predict",
    ],
)
def test_row_format_answers_named_outputs(client: TestClient, path: str) -> None:
    expected = _probabilities(client, TEXTS)
    for body in ({"instances": TEXTS}, {"instances": [{"text": t} for t in TEXTS]}):
        response = client.post(path, json={"signature_name": "serving_default", **body})
        assert response.status_code == 200, response.text
        probabilities, logits = _numbers(response)
        assert probabilities == pytest.approx(expected, abs=1e-6)
        _check_logits(probabilities, logits)
        assert response.content == orjson.dumps(
            {
                "predictions": [
                    {"probability": [probabilities[0]], "logit": [logits[0]]},
                    {"probability": [probabilities[1]], "logit": [logits[1]]},
                ]
            }
        )


def test_columnar_format_answers_named_output_columns(client: TestClient) -> None:
    expected = _probabilities(client, TEXTS)
    for inputs in ({"text": TEXTS}, TEXTS):
        response = client.post("/v1/models/sentiment:predict", json={"inputs": inputs})
        assert response.status_code == 200, response.text
        probabilities, logits = _numbers(response)
        assert probabilities == pytest.approx(expected, abs=1e-6)
        assert response.content == orjson.dumps(
            {
                "outputs": {
                    "probability": [[probabilities[0]], [probabilities[1]]],
                    "logit": [[logits[0]], [logits[1]]],
                }
            }
        )


_STATUS = {
    "model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
}


def test_status_bare_versions_and_labels(client: TestClient) -> None:
    # The bare route is also KServe V1's readiness route: one body, both protocols' fields.
    bare = client.get("/v1/models/sentiment")
    assert bare.content == orjson.dumps({**_STATUS, "name": "sentiment", "ready": True})
    assert client.get("/v1/models/sentiment/versions/1").content == orjson.dumps(_STATUS)
    assert client.get("/v1/models/sentiment/labels/stable").content == orjson.dumps(_STATUS)


def test_metadata_lists_every_signature_def_in_tf_servings_json(
    client: TestClient, model_card: dict[str, Any]
) -> None:
    # The shipped version's own signatures (v3: serving_default, score, explain), each one.
    shipped = set(model_card["signatures"])
    assert {SIGNATURE_NAME, SCORE_SIGNATURE_NAME, EXPLAIN_SIGNATURE_NAME} <= shipped
    tensor_shape = {"dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}]}
    for path in (
        "/v1/models/sentiment/metadata",
        "/v1/models/sentiment/versions/1/metadata",
        "/v1/models/sentiment/labels/stable/metadata",
    ):
        response = client.get(path)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_spec"] == {"name": "sentiment", "signature_name": "", "version": "1"}
        assert set(body["metadata"]) == {"signature_def"}
        signatures = body["metadata"]["signature_def"]["signature_def"]
        assert set(signatures) == {"__saved_model_init_op", *shipped}
        for name in (SCORE_SIGNATURE_NAME, EXPLAIN_SIGNATURE_NAME):
            assert signatures[name]["method_name"] == "tensorflow/serving/predict"
            assert set(signatures[name]["inputs"]) == {INPUT_NAME}
        assert set(signatures[SCORE_SIGNATURE_NAME]["outputs"]) == set(SCORE_OUTPUT_NAMES)
        assert set(signatures[EXPLAIN_SIGNATURE_NAME]["outputs"]) == set(EXPLAIN_OUTPUT_NAMES)
        default = signatures["serving_default"]
        assert default["method_name"] == "tensorflow/serving/predict"
        assert default["inputs"] == {
            "text": {
                "name": "serving_default_text:0",
                "dtype": "DT_STRING",
                "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False},
            }
        }
        assert set(default["outputs"]) == {"probability", "logit"}
        for output in default["outputs"].values():
            assert output["dtype"] == "DT_FLOAT"
            assert output["tensor_shape"] == {**tensor_shape, "unknown_rank": False}
            assert output["name"].startswith("StatefulPartitionedCall")


def test_classify_and_regress_answer_as_for_a_model_without_those_signatures(
    client: TestClient,
) -> None:
    body = {"examples": [{"text": "A fine film."}]}
    for path in ("/v1/models/sentiment:classify", "/v1/models/sentiment/versions/1:classify"):
        _assert_protocol_error(
            client.post(path, json=body),
            400,
            "Expected classification signature method_name to be tensorflow/serving/classify."
            " Was: tensorflow/serving/predict",
        )
    _assert_protocol_error(
        client.post("/v1/models/sentiment/labels/stable:regress", json=body),
        400,
        "Expected regression signature method_name to be tensorflow/serving/regress."
        " Was: tensorflow/serving/predict",
    )


def test_unknown_model_version_and_label(client: TestClient) -> None:
    good = {"instances": ["fine"]}
    _assert_protocol_error(
        client.post(f"/v1/models/{SECRET}:predict", json=good),
        404,
        "Servable not found for request: Latest(<unknown model>)",
    )
    _assert_protocol_error(
        client.post("/v1/models/sentiment/versions/2:predict", json=good),
        404,
        "Servable not found for request: Specific(sentiment, 2)",
    )
    _assert_protocol_error(
        client.get("/v1/models/sentiment/versions/7"),
        404,
        "Could not find version 7 of model sentiment",
    )
    _assert_protocol_error(
        client.get(f"/v1/models/{SECRET}"),
        404,
        "Could not find any versions of the requested model.",
    )
    _assert_protocol_error(client.get(f"/v1/models/{SECRET}/metadata"), 404)
    _assert_protocol_error(client.get("/v1/models/sentiment/versions/9/metadata"), 404)
    # An unknown label is NOT_FOUND like an unknown version (issue 26), never echoed.
    _assert_protocol_error(
        client.get(f"/v1/models/sentiment/labels/{SECRET}"),
        404,
        "Could not find a version of model sentiment with the requested label",
    )
    _assert_protocol_error(
        client.post(f"/v1/models/sentiment/labels/{SECRET}:predict", json=good),
        404,
        "Servable not found for request: no version of sentiment has the requested label",
    )
    _assert_protocol_error(client.get("/v1/models/sentiment/versions/x1"), 400)
    # GET on the predict path is not a model called "sentiment:predict".
    _assert_protocol_error(client.get("/v1/models/sentiment:predict"), 404)
    _assert_protocol_error(client.get("/v1/models/sentiment/nothing/here"), 404)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Missing 'inputs' or 'instances' key"),
        (
            {"instances": ["a"], "inputs": ["b"]},
            "Not both 'instances' and 'inputs' can be specified",
        ),
        ({"signature_name": SECRET, "instances": ["a"]}, None),
        ({"instances": []}, None),
        ({"instances": [" "]}, None),
        ({"instances": [5]}, None),
        ({"inputs": {SECRET: ["a"]}}, None),
        ({"instances": [{"text": ["a", "b"]}]}, None),
        ([], None),
    ],
)
def test_bad_predict_bodies_are_400(client: TestClient, body: Any, message: str | None) -> None:
    _assert_protocol_error(client.post("/v1/models/sentiment:predict", json=body), 400, message)


def test_the_other_signatures_are_listed_but_not_served_over_rest(client: TestClient) -> None:
    """score and explain exist (metadata lists them); :predict serves serving_default only."""
    for name in (SCORE_SIGNATURE_NAME, EXPLAIN_SIGNATURE_NAME):
        _assert_protocol_error(
            client.post(
                "/v1/models/sentiment:predict", json={"signature_name": name, "instances": ["a"]}
            ),
            400,
            "Only the 'serving_default' signature is served over REST here.",
        )
    _assert_protocol_error(
        client.post(
            "/v1/models/sentiment:predict", json={"signature_name": SECRET, "instances": ["a"]}
        ),
        400,
        "Serving signature name not found in signature def.",
    )


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/models/sentiment:predict",
        content=b'{"instances": ["unterminated',
        headers={"content-type": "application/json"},
    )
    _assert_protocol_error(response, 400)


def test_limits_and_not_ready(make_settings: Callable[..., Settings], tmp_path: Any) -> None:
    settings = make_settings(max_text_chars=50, max_batch_items=3, max_body_bytes=2048)
    with TestClient(create_app(settings)) as client:
        url = "/v1/models/sentiment:predict"
        _assert_protocol_error(client.post(url, json={"instances": ["a"] * 4}), 413)
        _assert_protocol_error(client.post(url, json={"instances": ["x" * 51]}), 400)
        _assert_protocol_error(client.post(url, json={"instances": ["y" * 4000]}), 413)
    empty = tmp_path / "empty"
    empty.mkdir()
    with TestClient(create_app(Settings(model_base_path=empty, reload_interval_seconds=0))) as c:
        not_ready = c.post("/v1/models/sentiment:predict", json={"instances": ["good"]})
        _assert_protocol_error(not_ready, 503)
        assert not_ready.headers["retry-after"] == "1"
        _assert_protocol_error(c.get("/v1/models/sentiment"), 503)
        _assert_protocol_error(c.get("/v1/models/sentiment/metadata"), 503)


def test_api_key_guards_the_tf_serving_routes(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(api_key="s3cret"))) as client:
        _assert_protocol_error(client.get("/v1/models/sentiment"), 401)
        _assert_protocol_error(client.get("/v1/models/sentiment/metadata"), 401)
        _assert_protocol_error(
            client.post("/v1/models/sentiment:predict", json={"instances": ["good"]}), 401
        )
        ok = client.post(
            "/v1/models/sentiment:predict",
            json={"instances": ["good"]},
            headers={"X-API-Key": "s3cret"},
        )
        assert ok.status_code == 200


def test_openapi_says_exactly_one_of_instances_or_inputs(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    request = schema["components"]["schemas"]["TFServingPredictRequest"]
    assert request["oneOf"] == [{"required": ["instances"]}, {"required": ["inputs"]}]
    paths = set(schema["paths"])
    for suffix in (":predict", ":classify", ":regress", "", "/metadata"):
        for form in ("", "/versions/{version}", "/labels/{label}"):
            assert f"/v1/models/{{name}}{form}{suffix}" in paths
