"""A version swapped in while requests wait: every route family answers them from the version
resolved when they started, and later requests from the new one.

Requests are held behind a model call (and an explanation) that waits on a gate, so they are
all resolved before the swap and scored after it. The two versions are different shipped
exports, so every answer shows by its numbers which version scored it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from fastapi.testclient import TestClient

from app.core import explainer as explainer_module
from app.main import create_app
from app.settings import Settings
from contract import version_dirs
from tests.app.conftest import publish_version, wait_until
from tests.paths import SHIPPED_MODEL_BASE

TEXTS = ["A wonderful film, I loved it.", "Dull, badly acted and far too long.", "Not bad."]
GATE_SECONDS = 30.0


def _v2_body(texts: list[str]) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}


# Each request held across the swap, and how to read its probabilities and version (None: the
# protocol's body does not name it).
HELD: dict[str, tuple[str, dict[str, Any], Callable[[dict[str, Any]], tuple[list[float], Any]]]] = {
    "native": (
        "/v1/predict",
        {"text": TEXTS[0]},
        lambda body: ([body["probability"]], body["model_version"]),
    ),
    "native batch": (
        "/v1/predict/batch",
        {"texts": TEXTS},
        lambda body: ([p["probability"] for p in body["predictions"]], body["model_version"]),
    ),
    "TF Serving": (
        "/v1/models/sentiment:predict",
        {"instances": TEXTS},
        lambda body: ([row["probability"][0] for row in body["predictions"]], None),
    ),
    "TF Serving version": (
        "/v1/models/sentiment/versions/1:predict",
        {"inputs": {"text": TEXTS}},
        lambda body: ([column[0] for column in body["outputs"]["probability"]], None),
    ),
    "TF Serving label": (
        "/v1/models/sentiment/labels/stable:predict",
        {"instances": TEXTS},
        lambda body: ([row["probability"][0] for row in body["predictions"]], None),
    ),
    "V2": (
        "/v2/models/sentiment/infer",
        _v2_body(TEXTS),
        lambda body: (body["outputs"][0]["data"], body["model_version"]),
    ),
    "V2 version": (
        "/v2/models/sentiment/versions/1/infer",
        _v2_body(TEXTS),
        lambda body: (body["outputs"][0]["data"], body["model_version"]),
    ),
}


def test_requests_are_answered_by_the_version_they_started_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = [path for _, path in version_dirs(SHIPPED_MODEL_BASE)]
    base = tmp_path / "sentiment"
    base.mkdir()
    publish_version(base, shipped[-2], 1)
    app = create_app(Settings(model_base_path=base, reload_interval_seconds=0))
    core = app.state.core
    gate = threading.Event()
    model_waiting = threading.Event()
    explain_waiting = threading.Event()
    answers: dict[str, httpx.Response] = {}

    with TestClient(app) as client:
        old = client.post("/v1/predict/batch", json={"texts": TEXTS}).json()["predictions"]
        old_probabilities = [prediction["probability"] for prediction in old]
        live = core.registry.live
        real_scores = live.predict_scores
        real_explain = explainer_module.explain_blocking

        def gated_scores(texts: Sequence[str]) -> npt.NDArray[np.float32]:
            model_waiting.set()
            assert gate.wait(GATE_SECONDS), "the test never opened the gate"
            return real_scores(texts)

        def gated_explain(*args: Any) -> list[dict[str, Any]]:
            explain_waiting.set()
            assert gate.wait(GATE_SECONDS), "the test never opened the gate"
            return real_explain(*args)

        live.predict_scores = gated_scores
        monkeypatch.setattr(explainer_module, "explain_blocking", gated_explain)

        def send(name: str, path: str, body: dict[str, Any]) -> None:
            answers[name] = client.post(path, json=body)

        held = [("blocker", "/v1/predict", {"text": "Holds the model."})]
        held += [("explain", "/v1/explain", {"texts": TEXTS})]
        held += [(name, path, body) for name, (path, body, _) in HELD.items()]
        threads = [threading.Thread(target=send, args=request) for request in held]
        try:
            threads[0].start()
            assert model_waiting.wait(GATE_SECONDS)
            for thread in threads[1:]:
                thread.start()
            assert explain_waiting.wait(GATE_SECONDS)
            assert wait_until(lambda: core.batcher.depth == len(HELD), GATE_SECONDS)

            publish_version(base, shipped[-1], 2)
            assert core.registry.refresh()  # the swap, as the watcher makes it
            assert client.get("/readyz").json()["model_version"] == "2"
        finally:
            gate.set()
            for thread in threads:
                thread.join(GATE_SECONDS)
            del live.predict_scores

        for name, (_, _, read) in HELD.items():
            assert answers[name].status_code == 200, (name, answers[name].text)
            probabilities, version = read(answers[name].json())
            assert version in (None, "1"), name
            expected = old_probabilities[: len(probabilities)]
            assert probabilities == pytest.approx(expected, abs=1e-5), name
        explained = answers["explain"].json()
        assert explained["model_version"] == "1"
        assert [e["probability"] for e in explained["explanations"]] == pytest.approx(
            old_probabilities, abs=1e-5
        )

        # Later requests get the new version, and the old one is no longer served.
        new = client.post("/v1/predict/batch", json={"texts": TEXTS}).json()
        assert new["model_version"] == "2"
        new_probabilities = [prediction["probability"] for prediction in new["predictions"]]
        assert new_probabilities != pytest.approx(old_probabilities, abs=1e-5)
        gone = client.post("/v1/models/sentiment/versions/1:predict", json={"instances": TEXTS})
        assert gone.status_code == 404
        v2_gone = client.post("/v2/models/sentiment/versions/1/infer", json=_v2_body(TEXTS))
        assert v2_gone.status_code == 404
