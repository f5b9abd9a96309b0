"""Several versions at once (issue 26): the version policy, labels, routing on every protocol,
the canary split, shadow scoring, per-version metrics and the start-up checks.

Routing is checked with two shipped versions that score differently (6 and 7), against each
version's SavedModel called directly. Everything that only needs *some* versions (policies,
reloads, the canary split, bad settings) uses copies of the smallest shipped version, which
loads in a fraction of a second; the shadow compares the two smallest real versions (1 and 2).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.core import memory
from app.core.memory import MIB, MemoryBudget
from app.core.predictor import Predictor
from app.core.registry import VersionChoice
from app.main import create_app
from app.settings import ConfigurationError, Settings, invalid_settings_message
from tests.app.conftest import metric_sum, publish_version, wait_until
from tests.paths import REPO_ROOT, SHIPPED_MODEL_BASE

TEXTS = [
    "A wonderful film with brilliant acting.",
    "Dull, predictable and far too long.",
    "Not bad.",
    "I did not like it, but the music was great!",
]
WAIT_SECONDS = 30.0


def _shipped(version: int) -> Path:
    return SHIPPED_MODEL_BASE / str(version)


def _base(root: Path, versions: dict[int, int]) -> Path:
    """A model base holding ``{published as: shipped version}`` copies."""
    base = root / "sentiment"
    base.mkdir(parents=True)
    for published, shipped in versions.items():
        publish_version(base, _shipped(shipped), published)
    return base


def _settings(base: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_base_path": base,
        "reload_interval_seconds": 0,
        "model_settle_seconds": 0,
        "grpc_port": 0,
    }
    return Settings(**{**values, **overrides})


def _available(client: TestClient) -> list[str]:
    status = client.get("/v1/models/sentiment").json()["model_version_status"]
    return [entry["version"] for entry in status if entry["state"] == "AVAILABLE"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _v2(texts: list[str]) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}


# Routing: versions 6 and 7, labelled stable and canary --------------------------------------


@pytest.fixture(scope="module")
def savedmodel_probabilities() -> dict[str, list[float]]:
    """What each version's SavedModel itself answers for TEXTS (no service in between)."""
    import tensorflow as tf

    found: dict[str, list[float]] = {}
    for version in (6, 7):
        signature = tf.saved_model.load(str(_shipped(version))).signatures["serving_default"]
        outputs = signature(text=tf.constant(TEXTS))
        found[str(version)] = outputs["probability"].numpy().reshape(-1).tolist()
    assert found["6"] != pytest.approx(found["7"], abs=1e-5), "the versions must differ"
    return found


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, int]]:
    """Versions 6 and 7 (stable and canary, no canary share), REST and gRPC."""
    base = _base(tmp_path_factory.mktemp("routed"), {6: 6, 7: 7})
    port = _free_port()
    settings = _settings(
        base,
        model_version_policy="specific:6,7",
        model_version_labels="stable=6,canary=7",
        grpc_port=port,
    )
    with TestClient(create_app(settings)) as client:
        yield client, port


# (name, method, path, body, read the probabilities, read the version in the body or None)
Reader = Callable[[dict[str, Any]], list[float]]
VersionReader = Callable[[dict[str, Any]], str | None]
ROUTES: list[tuple[str, str, dict[str, Any], Reader, VersionReader]] = [
    (
        "native",
        "/v1/predict/batch{query}",
        {"texts": TEXTS},
        lambda body: [p["probability"] for p in body["predictions"]],
        lambda body: body["model_version"],
    ),
    (
        "native explain",
        "/v1/explain{query}",
        {"texts": TEXTS},
        lambda body: [e["probability"] for e in body["explanations"]],
        lambda body: body["model_version"],
    ),
    (
        "TF Serving",
        "/v1/models/sentiment{path}:predict",
        {"instances": TEXTS},
        lambda body: [row["probability"][0] for row in body["predictions"]],
        lambda body: None,
    ),
    (
        "V2",
        "/v2/models/sentiment{path}/infer",
        _v2(TEXTS),
        lambda body: body["outputs"][0]["data"],
        lambda body: body["model_version"],
    ),
]


def _url(template: str, version: str | None, label: str | None) -> str | None:
    """The route for this choice; None where the protocol has no such form (V2 labels)."""
    if "{query}" in template:
        query = f"?version={version}" if version else f"?label={label}" if label else ""
        return template.format(query=query)
    if label is not None and template.startswith("/v2"):
        return None
    path = f"/versions/{version}" if version else f"/labels/{label}" if label else ""
    return template.format(path=path)


@pytest.mark.parametrize(
    ("version", "label", "expected"),
    [
        ("6", None, "6"),
        ("7", None, "7"),
        (None, "stable", "6"),
        (None, "canary", "7"),
        (None, None, "6"),  # unversioned requests follow stable
    ],
)
def test_versions_and_labels_reach_their_version_on_every_rest_protocol(
    routed: tuple[TestClient, int],
    savedmodel_probabilities: dict[str, list[float]],
    version: str | None,
    label: str | None,
    expected: str,
) -> None:
    client, _ = routed
    for name, template, body, probabilities, named in ROUTES:
        url = _url(template, version, label)
        if url is None:
            continue
        answer = client.post(url, json=body)
        assert answer.status_code == 200, (name, url, answer.text)
        assert answer.headers["x-model-version"] == expected, (name, url)
        assert named(answer.json()) in (None, expected), (name, url)
        scored = probabilities(answer.json())
        assert scored == pytest.approx(savedmodel_probabilities[expected], abs=1e-5), (name, url)
    single = client.post(_url("/v1/predict{query}", version, label) or "", json={"text": TEXTS[0]})
    assert single.json()["model_version"] == single.headers["x-model-version"] == expected
    card = client.get(_url("/v1/model{query}", version, label) or "")
    assert card.json()["version"] == int(expected)


def test_unknown_versions_and_labels_are_404_in_each_protocols_shape(
    routed: tuple[TestClient, int],
) -> None:
    client, _ = routed
    for path in ("/v1/predict?version=5", "/v1/predict?label=beta"):
        answer = client.post(path, json={"text": "fine"})
        assert answer.status_code == 404
        assert answer.json()["error"]["type"] == "model_not_found"
        assert "beta" not in answer.text
    # Both: the labelled version, if it has that number.
    both = client.post("/v1/predict?version=6&label=stable", json={"text": "fine"})
    assert both.status_code == 200 and both.json()["model_version"] == "6"
    assert client.post("/v1/predict?version=7&label=stable", json={"text": "a"}).status_code == 404
    answer = client.post("/v1/predict?version=x7", json={"text": "fine"})
    assert answer.status_code == 422 and answer.json()["error"]["type"] == "invalid_input"
    for path in (
        "/v1/models/sentiment/versions/5:predict",
        "/v1/models/sentiment/labels/beta:predict",
    ):
        answer = client.post(path, json={"instances": ["fine"]})
        assert answer.status_code == 404
        assert set(answer.json()) == {"error"} and "beta" not in answer.text
    answer = client.post("/v2/models/sentiment/versions/5/infer", json=_v2(["fine"]))
    assert answer.status_code == 404 and set(answer.json()) == {"error"}
    assert client.get("/v2/models/sentiment/versions/5/ready").status_code == 404


def test_status_and_metadata_list_every_loaded_version(routed: tuple[TestClient, int]) -> None:
    client, _ = routed
    status = client.get("/v1/models/sentiment").json()
    assert status["model_version_status"] == [
        {"version": v, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for v in ("7", "6")
    ]
    assert status["ready"] is True
    labelled = client.get("/v1/models/sentiment/labels/canary").json()["model_version_status"]
    assert [entry["version"] for entry in labelled] == ["7"]
    assert client.get("/v2/models/sentiment").json()["versions"] == ["7", "6"]
    one = client.get("/v2/models/sentiment/versions/6")
    assert one.json()["versions"] == ["6"] and one.headers["x-model-version"] == "6"
    metadata = client.get("/v1/models/sentiment/labels/canary/metadata")
    assert metadata.json()["model_spec"]["version"] == metadata.headers["x-model-version"] == "7"


def test_request_prediction_and_input_metrics_carry_the_version_that_answered(
    routed: tuple[TestClient, int],
) -> None:
    client, _ = routed
    route = {"route": "/v1/predict/batch", "method": "POST", "status": "200"}
    before = {
        v: metric_sum(client, "sentiment_http_requests_total", **route, version=v) for v in "67"
    }
    tokens = {v: metric_sum(client, "sentiment_input_tokens_count", version=v) for v in "67"}
    labelled = {v: metric_sum(client, "sentiment_predictions_total", version=v) for v in "67"}
    client.post("/v1/predict/batch?version=7", json={"texts": TEXTS})
    client.post("/v1/predict/batch?version=7", json={"texts": TEXTS})
    client.post("/v1/predict/batch", json={"texts": TEXTS})
    after = {
        v: metric_sum(client, "sentiment_http_requests_total", **route, version=v) for v in "67"
    }
    assert (after["7"] - before["7"], after["6"] - before["6"]) == (2, 1)
    latency = metric_sum(
        client, "sentiment_http_request_duration_seconds_count", route="/v1/predict/batch"
    )
    assert latency >= 3
    assert metric_sum(client, "sentiment_input_tokens_count", version="7") - tokens["7"] == 8
    assert metric_sum(client, "sentiment_input_tokens_count", version="6") - tokens["6"] == 4
    assert metric_sum(client, "sentiment_predictions_total", version="7") - labelled["7"] == 8
    info = [f"{v}" for v in "67" if metric_sum(client, "sentiment_model_info", version=v) == 1]
    assert info == ["6", "7"]


def test_grpc_version_and_label_reach_their_version(
    routed: tuple[TestClient, int], savedmodel_probabilities: dict[str, list[float]]
) -> None:
    """TF Serving's gRPC ``model_spec.version``/``version_label`` and V2's ``model_version``
    route through the same core as REST (engineer G's adapter)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from app.protocols.grpc.open_inference import load_protocol

    _, port = routed
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def predict(version: int | None = None, label: str | None = None) -> Any:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "sentiment"
            if version is not None:
                request.model_spec.version.value = version
            if label is not None:
                request.model_spec.version_label = label
            request.inputs["text"].CopyFrom(tf.make_tensor_proto(TEXTS))
            return stub.Predict(request, timeout=WAIT_SECONDS)

        for answer, expected in (
            (predict(version=7), "7"),
            (predict(version=6), "6"),
            (predict(label="canary"), "7"),
            (predict(label="stable"), "6"),
            (predict(), "6"),
        ):
            assert str(answer.model_spec.version.value) == expected
            scored = tf.make_ndarray(answer.outputs["probability"]).reshape(-1).tolist()
            assert scored == pytest.approx(savedmodel_probabilities[expected], abs=1e-5)
        for missing in ({"version": 5}, {"label": "beta"}):
            with pytest.raises(grpc.RpcError) as refused:
                predict(**missing)  # type: ignore[arg-type]
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND

        # V2's ModelInfer, with the server's own message classes (tritonclient and kserve
        # register clashing copies of the protocol in the default pool: not in this process).
        v2 = load_protocol()
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=v2.ModelInferRequest.SerializeToString,
            response_deserializer=v2.ModelInferResponse.FromString,
        )

        def model_infer(version: str) -> Any:
            text = v2.ModelInferRequest.InferInputTensor(
                name="text",
                datatype="BYTES",
                shape=[len(TEXTS)],
                contents=v2.InferTensorContents(bytes_contents=[t.encode() for t in TEXTS]),
            )
            request = v2.ModelInferRequest(
                model_name="sentiment", model_version=version, inputs=[text]
            )
            return infer(request, timeout=WAIT_SECONDS)

        for version in ("6", "7", ""):
            answer = model_infer(version)
            expected = version or "6"
            assert answer.model_version == expected
            names = [output.name for output in answer.outputs]
            raw = answer.raw_output_contents[names.index("probability")]
            scored = np.frombuffer(raw, dtype="<f4").tolist()
            assert scored == pytest.approx(savedmodel_probabilities[expected], abs=1e-5)
        with pytest.raises(grpc.RpcError) as refused:
            model_infer("5")
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND


# Policies and reloads: copies of the smallest version -----------------------------------------


@pytest.mark.parametrize(
    ("policy", "served"),
    [
        ("latest", ["3"]),
        ("latest:2", ["3", "2"]),
        ("all", ["3", "2", "1"]),
        ("specific:1,3", ["3", "1"]),
    ],
)
def test_each_policy_loads_exactly_the_versions_it_names(
    tmp_path: Path, policy: str, served: list[str]
) -> None:
    base = _base(tmp_path, {1: 1, 2: 1, 3: 1})
    with TestClient(create_app(_settings(base, model_version_policy=policy))) as client:
        assert _available(client) == served
        assert client.get("/v2/models/sentiment").json()["versions"] == served
        unversioned = client.post("/v1/predict", json={"text": "fine"})
        assert unversioned.json()["model_version"] == served[0]  # the highest, without stable
        for version in ("1", "2", "3"):
            answer = client.post(f"/v1/predict?version={version}", json={"text": "fine"})
            assert answer.status_code == (200 if version in served else 404), (policy, version)


def test_versions_appearing_and_disappearing_under_load_change_what_serves_without_a_failure(
    tmp_path: Path,
) -> None:
    base = _base(tmp_path, {1: 1, 2: 1})
    settings = _settings(base, model_version_policy="latest:2", reload_interval_seconds=0.1)
    app = create_app(settings)
    registry = app.state.core.registry
    with TestClient(app) as client:
        assert _available(client) == ["2", "1"]
        stop = threading.Event()
        outcomes: dict[str, list[tuple[int, str | None]]] = {"": [], "?version=2": []}

        def hammer(query: str) -> None:
            deadline = time.monotonic() + 90
            for i in range(100_000):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                answer = client.post(f"/v1/predict{query}", json={"text": f"Review {i}."})
                outcomes[query].append((answer.status_code, answer.headers.get("x-model-version")))

        threads = [threading.Thread(target=hammer, args=(query,)) for query in outcomes]
        for thread in threads:
            thread.start()
        try:
            assert wait_until(lambda: min(map(len, outcomes.values())) >= 20, WAIT_SECONDS)
            publish_version(base, _shipped(1), 3)  # appears: 3 serves, 1 leaves the policy
            assert wait_until(lambda: _available(client) == ["3", "2"], WAIT_SECONDS)
            # Version 1 is unloaded once nothing holds it any more.
            statuses = registry.statuses
            assert wait_until(lambda: [s.version for s in statuses()] == [3, 2], WAIT_SECONDS)
            seen = len(outcomes[""])
            assert wait_until(lambda: len(outcomes[""]) >= seen + 20, WAIT_SECONDS)
            shutil.rmtree(base / "3")  # disappears: 1 comes back, 3 leaves
            assert wait_until(lambda: _available(client) == ["2", "1"], WAIT_SECONDS)
            seen = len(outcomes[""])
            assert wait_until(lambda: len(outcomes[""]) >= seen + 20, WAIT_SECONDS)
        finally:
            stop.set()
            for thread in threads:
                thread.join(WAIT_SECONDS)

    assert all(status == 200 for runs in outcomes.values() for status, _ in runs)
    unversioned = [version for _, version in outcomes[""]]
    changes = [v for i, v in enumerate(unversioned) if i == 0 or v != unversioned[i - 1]]
    assert changes == ["2", "3", "2"], "served the versions out of order"
    assert {version for _, version in outcomes["?version=2"]} == {"2"}


# The canary split: copies of the smallest version as stable (1) and canary (2) ---------------


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    base = _base(tmp_path_factory.mktemp("canary"), {1: 1, 2: 1})
    settings = _settings(
        base,
        model_version_policy="all",
        model_version_labels="stable=1,canary=2",
        canary_percent=10,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_canary_gets_its_share_of_unversioned_requests(canary: TestClient) -> None:
    versions = [
        canary.post("/v1/predict", json={"text": f"Review {i}."}).headers["x-model-version"]
        for i in range(1000)
    ]
    assert abs(versions.count("2") / 10 - 10) <= 4, versions.count("2")
    # Named versions and labels are never split.
    assert (
        canary.post("/v1/predict?label=stable", json={"text": "x y"}).json()["model_version"] == "1"
    )


def test_the_same_request_id_always_gets_the_same_version(canary: TestClient) -> None:
    def version(request_id: str, path: str, body: dict[str, Any]) -> str:
        answer = canary.post(path, json=body, headers={"X-Request-ID": request_id})
        assert answer.status_code == 200
        return answer.headers["x-model-version"]

    chosen = {f"req-{i}": version(f"req-{i}", "/v1/predict", {"text": "ok"}) for i in range(1000)}
    assert abs(list(chosen.values()).count("2") / 10 - 10) <= 4
    retried = list(chosen)[:200]
    assert [version(rid, "/v1/predict", {"text": "again"}) for rid in retried] == [
        chosen[rid] for rid in retried
    ]
    # The same id lands on the same side on every protocol.
    for rid in retried[:40]:
        assert version(rid, "/v1/models/sentiment:predict", {"instances": ["ok"]}) == chosen[rid]
        assert version(rid, "/v2/models/sentiment/infer", _v2(["ok"])) == chosen[rid]


# Shadow scoring: versions 1 (stable) and 2 (the shadow), which score differently --------------


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    base = _base(tmp_path_factory.mktemp("shadow"), {1: 1, 2: 2})
    settings = _settings(
        base,
        model_version_policy="all",
        model_version_labels="stable=1,candidate=2",
        shadow_label="candidate",
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _shadow(client: TestClient, outcome: str) -> float:
    return metric_sum(client, "sentiment_shadow_requests_total", outcome=outcome)


def test_shadow_scores_copies_and_never_answers(shadowed: TestClient) -> None:
    primary = Predictor.load(_shipped(1), warmup_batch_sizes=())
    expected = primary.predict_probabilities(TEXTS).tolist()
    scored = _shadow(shadowed, "scored")
    texts = metric_sum(shadowed, "sentiment_shadow_texts_total", primary="1", shadow="2")
    for _ in range(5):
        answer = shadowed.post("/v1/predict/batch", json={"texts": TEXTS})
        assert answer.headers["x-model-version"] == answer.json()["model_version"] == "1"
        probabilities = [p["probability"] for p in answer.json()["predictions"]]
        assert probabilities == pytest.approx(expected, abs=1e-5)
    assert wait_until(lambda: _shadow(shadowed, "scored") == scored + 5, WAIT_SECONDS)
    compared = metric_sum(shadowed, "sentiment_shadow_texts_total", primary="1", shadow="2")
    assert compared - texts == 5 * len(TEXTS)
    agree = metric_sum(shadowed, "sentiment_shadow_texts_total", agreement="agree")
    disagree = metric_sum(shadowed, "sentiment_shadow_texts_total", agreement="disagree")
    assert agree > 0 and agree + disagree == compared
    differences = metric_sum(
        shadowed, "sentiment_shadow_probability_difference_count", primary="1", shadow="2"
    )
    assert differences == compared
    spread = metric_sum(shadowed, "sentiment_shadow_probability_difference_sum")
    assert spread > 0  # versions 1 and 2 do differ
    # The shadow answered nobody, and its copies are not its traffic.
    assert metric_sum(shadowed, "sentiment_http_requests_total", version="2") == 0
    assert metric_sum(shadowed, "sentiment_predictions_total", version="2") == 0


def _latencies(client: TestClient, count: int) -> list[float]:
    spent = []
    for i in range(count):
        started = time.perf_counter()
        answer = client.post("/v1/predict", json={"text": f"A fine film, number {i}."})
        spent.append(time.perf_counter() - started)
        assert answer.status_code == 200 and answer.json()["model_version"] == "1"
    return spent


def test_a_slow_or_failing_shadow_changes_nothing_for_the_primary(
    shadowed: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    shadow = shadowed.app.state.core.registry.resolve(VersionChoice(label="candidate"))  # type: ignore[attr-defined]
    real = shadow.predict_scores_unobserved
    expected = shadowed.post("/v1/predict/batch", json={"texts": TEXTS}).json()
    baseline = _latencies(shadowed, 40)

    delay = 0.5

    def slow(texts: list[str]) -> Any:
        time.sleep(delay)
        return real(texts)

    monkeypatch.setattr(shadow, "predict_scores_unobserved", slow)
    dropped = _shadow(shadowed, "dropped")
    behind = _latencies(shadowed, 40)
    # Nobody waits for the shadow: the primary's latency stays within noise of the baseline,
    # far below the shadow's own delay, and copies it can't keep up with are dropped.
    assert max(behind) < delay
    assert statistics.median(behind) < 2 * statistics.median(baseline) + 0.01
    assert _shadow(shadowed, "dropped") > dropped

    def failing(texts: list[str]) -> Any:
        raise RuntimeError("the shadow broke")

    monkeypatch.setattr(shadow, "predict_scores_unobserved", failing)
    failed = _shadow(shadowed, "failed")
    assert shadowed.post("/v1/predict/batch", json={"texts": TEXTS}).json() == expected
    assert wait_until(lambda: _shadow(shadowed, "failed") > failed, WAIT_SECONDS)
    assert shadowed.post("/v1/predict/batch", json={"texts": TEXTS}).json() == expected


# Bad settings stop start-up with a clear message ----------------------------------------------


def _start(settings: Settings) -> None:
    with TestClient(create_app(settings)):
        pytest.fail("the service started")


def test_a_label_on_a_version_that_is_not_loaded_stops_start_up(tmp_path: Path) -> None:
    base = _base(tmp_path, {1: 1, 2: 1})
    with pytest.raises(ConfigurationError) as not_loaded:
        _start(_settings(base, model_version_labels="stable=1"))  # latest loads 2 only
    message = str(not_loaded.value)
    assert "SENTIMENT_MODEL_VERSION_LABELS label stable=1" in message
    assert "SENTIMENT_MODEL_VERSION_POLICY=latest" in message and "specific:1,2" in message
    with pytest.raises(ConfigurationError, match="there is no version 9 under"):
        _start(_settings(base, model_version_policy="all", model_version_labels="stable=9"))
    with pytest.raises(ConfigurationError, match="SENTIMENT_SHADOW_VERSION=1"):
        _start(_settings(base, shadow_version=1))


def test_a_policy_over_the_memory_budget_stops_start_up(tmp_path: Path) -> None:
    base = _base(tmp_path, {1: 1, 2: 1})
    now = (memory.resident_bytes() or 0) // MIB
    # Far below what any worker holds: "just under now" was not, since loading hands freed heap
    # back to the system and, in a test process with much of it, left less resident than before.
    with pytest.raises(ConfigurationError) as over:
        _start(_settings(base, model_version_policy="all", memory_budget_mb=1))
    assert "SENTIMENT_MEMORY_BUDGET_MB" in str(over.value)
    assert "does not fit the memory budget" in str(over.value)
    roomy = _settings(base, model_version_policy="all", memory_budget_mb=now + 4096)
    with TestClient(create_app(roomy)) as client:
        assert _available(client) == ["2", "1"]


def test_the_budget_projects_the_versions_still_to_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "resident_bytes", lambda: 700 * MIB)
    budget = MemoryBudget(1000 * MIB)
    assert budget.shortfall(3) is None  # nothing measured yet: the first load measures
    budget.record(7, 140 * MIB)
    budget.record(6, 110 * MIB)
    assert budget.shortfall(2) is None  # 700 + 2 x 140 = 980
    message = budget.shortfall(3)  # 700 + 3 x 140 = 1120
    assert message is not None and "1120 MiB" in message and "=1000" in message
    assert budget.overrun() is None
    monkeypatch.setattr(memory, "resident_bytes", lambda: 1001 * MIB)
    assert budget.overrun() is not None
    assert MemoryBudget(None).shortfall(100) is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"model_version_policy": "newest"}, "SENTIMENT_MODEL_VERSION_POLICY: 'newest' is not"),
        ({"model_version_policy": "latest:0"}, "use latest, latest:N, all or specific:"),
        ({"model_version_policy": "specific:6,x"}, "'x' is not a version number"),
        ({"model_version_labels": "stable=six"}, "label stable: 'six' is not a version"),
        ({"model_version_labels": "7=6"}, "'7' is not a label name"),
        ({"model_version_labels": "stable=6,stable=7"}, "label 'stable' is given twice"),
        ({"canary_percent": 150}, "SENTIMENT_CANARY_PERCENT: Input should be less than"),
        ({"shadow_percent": -5}, "SENTIMENT_SHADOW_PERCENT: Input should be greater than"),
        ({"memory_budget_mb": 0}, "SENTIMENT_MEMORY_BUDGET_MB: Input should be greater"),
        ({"canary_percent": 10}, "set both in SENTIMENT_MODEL_VERSION_LABELS"),
        ({"shadow_label": "candidate"}, "SENTIMENT_SHADOW_LABEL=candidate is not a label"),
        (
            {"model_version_policy": "specific:6", "model_version_labels": "canary=7"},
            "label canary names version 7, which SENTIMENT_MODEL_VERSION_POLICY=specific:6",
        ),
    ],
)
def test_invalid_settings_are_refused_with_the_variable_and_the_fix(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**values)
    assert message in invalid_settings_message(refused.value)


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"SENTIMENT_MODEL_VERSION_POLICY": "newest"}, "SENTIMENT_MODEL_VERSION_POLICY"),
        ({"SENTIMENT_CANARY_PERCENT": "150"}, "SENTIMENT_CANARY_PERCENT"),
    ],
)
def test_invalid_settings_stop_python_m_app_with_a_message_not_a_traceback(
    environment: dict[str, str], named: str
) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=REPO_ROOT,
        env={**_clean_environment(), **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode != 0
    assert named in finished.stderr and "invalid configuration" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_a_label_on_an_absent_version_stops_python_m_app_with_a_message(tmp_path: Path) -> None:
    base = _base(tmp_path, {1: 1})
    environment = {
        "SENTIMENT_MODEL_BASE_PATH": str(base),
        "SENTIMENT_WORKERS": "1",
        "SENTIMENT_PORT": "0",
        "SENTIMENT_GRPC_PORT": "0",
        "SENTIMENT_MODEL_VERSION_LABELS": "stable=1,canary=2",
    }
    finished = subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=REPO_ROOT,
        env={**_clean_environment(), **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode != 0
    assert "configuration error: SENTIMENT_MODEL_VERSION_LABELS label canary=2" in finished.stderr
    assert "Traceback" not in finished.stderr


def _clean_environment() -> dict[str, str]:
    """This process's environment without any service setting (the test names its own)."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SENTIMENT_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
