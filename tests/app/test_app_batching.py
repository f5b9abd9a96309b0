"""Micro-batching behaviour with the real model: matching, back-pressure, failure isolation,
and batches that never mix model versions.

The only fake in the suite lives here: a thin wrapper at the predictor boundary that holds a
model call on a gate (so requests pile up deterministically) or fails a call on purpose.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from fastapi.testclient import TestClient

from app.core.batcher import MicroBatcher
from app.core.errors import InferenceError, NotReadyError, OverloadedError
from app.core.predictor import Predictor
from app.main import create_app
from app.settings import Settings

GATE_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def predictor(source_version_dir: Path) -> Predictor:
    return Predictor.load(source_version_dir)


def _texts(count: int) -> list[str]:
    words = ["wonderful", "dull", "brilliant", "awful", "moving", "boring", "fine", "bad"]
    return [
        f"A {words[i % len(words)]} film, scene {i} " + "really " * (i % 5) for i in range(count)
    ]


PredictFunction = Callable[[Sequence[str]], npt.NDArray[np.float32]]


class GatedScorer:
    """Scores with the real model, but calls wait until the gate opens; may fail on purpose."""

    def __init__(self, predictor: Predictor, poison: str | None = None) -> None:
        self.predictor = predictor
        self.predict: PredictFunction = predictor.predict_scores
        self.poison = poison
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[str]] = []

    def __call__(self, model: Any, texts: list[str]) -> npt.NDArray[np.float32]:
        self.entered.set()
        assert self.gate.wait(GATE_TIMEOUT), "test never opened the gate"
        self.batches.append(list(texts))
        if self.poison is not None and any(self.poison in text for text in texts):
            raise RuntimeError("simulated model failure")
        return self.predict(texts)


async def _wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, GATE_TIMEOUT)


def test_batched_results_equal_one_at_a_time_and_stay_matched(predictor: Predictor) -> None:
    singles = _texts(30)
    groups = [_texts(33)[30:], ["Short.", "A much longer review " * 40]]
    requests: list[Sequence[str]] = [[text] for text in singles] + groups
    expected = [
        [float(predictor.predict_probabilities([text])[0]) for text in request]
        for request in requests
    ]
    scorer = GatedScorer(predictor)

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(scorer, max_batch_size=16, queue_size=100)
        batcher.start()
        tasks = [asyncio.create_task(batcher.submit(predictor, request)) for request in requests]
        await asyncio.sleep(0.05)  # every request is queued behind the gated first call
        scorer.gate.set()
        results = await asyncio.gather(*tasks)
        await batcher.drain(timeout_seconds=5)
        return results

    results = asyncio.run(scenario())
    sizes = [len(batch) for batch in scorer.batches]
    assert sum(sizes) == sum(len(request) for request in requests)
    assert max(sizes) > 1, "concurrent requests were not batched"
    assert all(size <= 16 for size in sizes)
    for request, want, got in zip(requests, expected, results, strict=True):
        assert len(got.probabilities) == len(request)
        assert got.probabilities == pytest.approx(want, abs=1e-6)
        assert len(got.logits) == len(request)


def test_a_batch_holds_one_model_and_waiting_models_take_turns() -> None:
    """Requests resolved to different versions never share a model call, and each gets its
    own version's scores, whatever order they arrived in."""
    gate = threading.Event()
    entered = threading.Event()
    calls: list[tuple[str, list[str]]] = []
    value = {"old": 0.25, "new": 0.75}

    def score(model: str, texts: list[str]) -> npt.NDArray[np.float32]:
        entered.set()
        assert gate.wait(GATE_TIMEOUT), "test never opened the gate"
        calls.append((model, list(texts)))
        return np.array([[value[model], 0.0]] * len(texts), np.float32)

    async def scenario() -> list[Any]:
        batcher: MicroBatcher[str] = MicroBatcher(score, max_batch_size=8, queue_size=10)
        batcher.start()
        busy = asyncio.create_task(batcher.submit("old", ["busy"]))
        await _wait_for(entered)
        arrivals = [("old", "o1"), ("new", "n1"), ("old", "o2"), ("new", "n2"), ("old", "o3")]
        queued = [asyncio.create_task(batcher.submit(m, [text])) for m, text in arrivals]
        await asyncio.sleep(0.01)
        assert batcher.depth == len(arrivals)
        gate.set()
        results = await asyncio.gather(busy, *queued)
        await batcher.drain(timeout_seconds=5)
        return [result.probabilities for result in results]

    probabilities = asyncio.run(scenario())
    assert calls == [("old", ["busy"]), ("old", ["o1", "o2", "o3"]), ("new", ["n1", "n2"])]
    assert probabilities == [[0.25], [0.25], [0.75], [0.25], [0.75], [0.25]]


@pytest.mark.skipif(sys.platform != "linux", reason="SCHED_BATCH is Linux's")
def test_the_model_thread_never_preempts_the_event_loop_on_wake_up() -> None:
    """The model thread is SCHED_BATCH; the event loop's thread keeps its own policy."""
    policies: list[int] = []

    def score(model: str, texts: list[str]) -> npt.NDArray[np.float32]:
        policies.append(os.sched_getscheduler(0))
        return np.zeros((len(texts), 2), np.float32)

    async def scenario() -> int:
        batcher = MicroBatcher(score, max_batch_size=4, queue_size=4)
        batcher.start()
        await batcher.submit("model", ["a text"])
        await batcher.drain(timeout_seconds=5)
        return os.sched_getscheduler(0)

    loop_policy = asyncio.run(scenario())
    assert policies == [os.SCHED_BATCH]
    assert loop_policy == os.SCHED_OTHER


def test_full_queue_refuses_at_once_and_queued_requests_still_complete(
    predictor: Predictor,
) -> None:
    scorer = GatedScorer(predictor)

    async def scenario() -> None:
        batcher = MicroBatcher(scorer, max_batch_size=4, queue_size=3)
        batcher.start()
        running = asyncio.create_task(batcher.submit(predictor, ["in the model"]))
        await _wait_for(scorer.entered)
        queued = [asyncio.create_task(batcher.submit(predictor, [f"queued {i}"])) for i in range(3)]
        await asyncio.sleep(0.01)
        assert batcher.depth == 3
        with pytest.raises(OverloadedError):
            await asyncio.wait_for(batcher.submit(predictor, ["one too many"]), timeout=1)
        scorer.gate.set()
        results = await asyncio.gather(running, *queued)
        assert [len(result.probabilities) for result in results] == [1, 1, 1, 1]
        await batcher.drain(timeout_seconds=5)
        with pytest.raises(NotReadyError):
            await batcher.submit(predictor, ["after shutdown"])

    asyncio.run(scenario())


def test_failing_model_call_fails_only_its_batch(predictor: Predictor) -> None:
    scorer = GatedScorer(predictor, poison="POISON")

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(scorer, max_batch_size=2, queue_size=10)
        batcher.start()
        first = asyncio.create_task(batcher.submit(predictor, ["first, alone"]))
        await _wait_for(scorer.entered)
        # Queued behind the gate: greedy batches of two are [POISON, bystander], [c, d].
        rest = [
            asyncio.create_task(batcher.submit(predictor, [text]))
            for text in ("POISON review", "bystander", "third", "fourth")
        ]
        await asyncio.sleep(0.01)
        scorer.gate.set()
        outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
        after = await batcher.submit(predictor, ["after the failure"])
        await batcher.drain(timeout_seconds=5)
        return [*outcomes, after]

    outcomes = asyncio.run(scenario())
    assert scorer.batches[1] == ["POISON review", "bystander"]
    assert isinstance(outcomes[1], InferenceError) and isinstance(outcomes[2], InferenceError)
    for index in (0, 3, 4, 5):
        assert not isinstance(outcomes[index], BaseException), outcomes[index]
        assert len(outcomes[index].probabilities) == 1


@pytest.fixture
def gated_app(
    make_settings: Callable[..., Settings],
) -> Iterator[tuple[TestClient, GatedScorer]]:
    """The app with its live model wrapped so the test controls when model calls finish."""
    app = create_app(make_settings(queue_size=1, max_batch_size=1))
    with TestClient(app) as client:
        live = app.state.core.registry.live
        scorer = GatedScorer(live, poison="POISON")

        def gated_predict(texts: Sequence[str]) -> npt.NDArray[np.float32]:
            return scorer(live, list(texts))

        live.predict_scores = gated_predict  # what the app's batcher calls
        try:
            yield client, scorer
        finally:
            scorer.gate.set()
            del live.predict_scores  # back to the class's method


def test_app_answers_429_when_the_queue_is_full(
    gated_app: tuple[TestClient, GatedScorer], assert_error: Callable[..., Any]
) -> None:
    client, scorer = gated_app
    results: dict[str, Any] = {}

    def post(name: str) -> None:
        results[name] = client.post("/v1/predict", json={"text": f"request {name}"})

    first = threading.Thread(target=post, args=("first",))
    first.start()
    assert scorer.entered.wait(GATE_TIMEOUT)
    second = threading.Thread(target=post, args=("second",))
    second.start()
    batcher = client.app.state.core.batcher  # type: ignore[attr-defined]
    for _ in range(200):
        if batcher.depth == 1:
            break
        threading.Event().wait(0.01)
    assert batcher.depth == 1
    # The model is busy (held on the gate) and the queue is full: health still answers.
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    overloaded = client.post("/v1/predict", json={"text": "third"})
    assert_error(overloaded, 429, "overloaded")
    assert overloaded.headers["retry-after"] == "1"
    scorer.gate.set()
    first.join(GATE_TIMEOUT)
    second.join(GATE_TIMEOUT)
    assert results["first"].status_code == 200
    assert results["second"].status_code == 200
    assert 'status="429"' in client.get("/metrics").text


def test_app_model_failure_is_a_clean_503_and_the_next_request_works(
    gated_app: tuple[TestClient, GatedScorer],
    assert_error: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, scorer = gated_app
    scorer.gate.set()
    failed = client.post("/v1/predict", json={"text": "POISON zq-secret-text"})
    assert_error(failed, 503, "inference_failed")
    assert "zq-secret" not in failed.text
    assert "zq-secret" not in caplog.text
    assert "model call failed" in caplog.text
    assert client.post("/v1/predict", json={"text": "a fine film"}).status_code == 200


def test_max_wait_gathers_requests_that_arrive_within_it(predictor: Predictor) -> None:
    batches: list[int] = []

    def score(model: Predictor, texts: list[str]) -> npt.NDArray[np.float32]:
        batches.append(len(texts))
        return model.predict_scores(texts)

    async def scenario() -> None:
        batcher = MicroBatcher(score, max_batch_size=8, max_wait_seconds=0.2, queue_size=10)
        batcher.start()
        first = asyncio.create_task(batcher.submit(predictor, ["early"]))
        await asyncio.sleep(0.02)
        second = asyncio.create_task(batcher.submit(predictor, ["a little later"]))
        await asyncio.gather(first, second)
        await batcher.drain(timeout_seconds=5)

    asyncio.run(scenario())
    assert batches == [2]


def _gather_scenario(
    predictor: Predictor, gather_seconds: float, max_batch_size: int = 8
) -> tuple[list[list[str]], float]:
    """One call held busy while "queued" arrives, then "late" arrives 50 ms after the call ends.

    Returns the batches the model saw and how long "late" took to be answered.
    """
    scorer = GatedScorer(predictor)

    async def scenario() -> float:
        batcher = MicroBatcher(
            scorer, max_batch_size=max_batch_size, gather_seconds=gather_seconds, queue_size=10
        )
        batcher.start()
        busy = asyncio.create_task(batcher.submit(predictor, ["busy"]))
        await _wait_for(scorer.entered)
        queued = asyncio.create_task(batcher.submit(predictor, ["queued"]))
        await asyncio.sleep(0)
        scorer.gate.set()
        await busy
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await batcher.submit(predictor, ["late"])
        late_seconds = time.monotonic() - started
        await queued
        await batcher.drain(timeout_seconds=5)
        return late_seconds

    late_seconds = asyncio.run(scenario())
    return scorer.batches, late_seconds


def test_under_load_the_next_batch_gathers_requests_arriving_within_the_window(
    predictor: Predictor,
) -> None:
    batches, _ = _gather_scenario(predictor, gather_seconds=2.0)
    assert batches == [["busy"], ["queued", "late"]]


def test_without_gathering_the_next_batch_starts_at_once(predictor: Predictor) -> None:
    batches, _ = _gather_scenario(predictor, gather_seconds=0.0)
    assert batches == [["busy"], ["queued"], ["late"]]


def test_a_gathering_batch_starts_the_moment_it_is_full(predictor: Predictor) -> None:
    batches, late_seconds = _gather_scenario(predictor, gather_seconds=30.0, max_batch_size=2)
    assert batches == [["busy"], ["queued", "late"]]
    assert late_seconds < 10.0  # not the 30 s window


@pytest.mark.parametrize("gather_seconds", [0.0, 30.0])
def test_a_lone_request_on_an_idle_model_is_never_delayed(
    predictor: Predictor, gather_seconds: float
) -> None:
    batches: list[int] = []

    def score(model: Predictor, texts: list[str]) -> npt.NDArray[np.float32]:
        batches.append(len(texts))
        return model.predict_scores(texts)

    async def scenario() -> float:
        batcher = MicroBatcher(
            score, max_batch_size=8, gather_seconds=gather_seconds, queue_size=10
        )
        batcher.start()
        started = time.monotonic()
        await batcher.submit(predictor, ["alone"])
        await asyncio.sleep(0.02)
        await batcher.submit(predictor, ["alone again"])
        elapsed = time.monotonic() - started
        await batcher.drain(timeout_seconds=5)
        return elapsed

    assert asyncio.run(scenario()) < 10.0  # not the gathering window
    assert batches == [1, 1]
