"""The bare batching server is a fair yardstick: the real model, the service's answers and
validation, and requests that arrive together scored together.

If it scored another model (or none) the benchmark's "service/bare" ratio would compare
different work; if it skipped validation it would be unfairly fast; if its batcher did not
batch it would be a weak yardstick rather than the strongest simple one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.protocols.native_schemas import PredictResponse
from app.settings import Settings
from bench.bare import GreedyBatcher, create_app
from bench.inprocess import newest_version_dir
from contract import CARD_FILE, SAMPLE_TOLERANCE, ModelCard
from tests.paths import SHIPPED_MODEL_BASE

SETTINGS = Settings(model_base_path=SHIPPED_MODEL_BASE)
MAX_BATCH_TEXTS = SETTINGS.max_batch_size


@pytest.fixture(scope="module")
def bare_client() -> Iterator[TestClient]:
    with TestClient(create_app(SETTINGS)) as client:
        yield client


def test_it_answers_the_newest_versions_card_samples_in_the_service_shape(
    bare_client: TestClient,
) -> None:
    version_dir = newest_version_dir(SHIPPED_MODEL_BASE)
    card = ModelCard.model_validate_json((version_dir / CARD_FILE).read_bytes())
    scorable = [sample for sample in card.samples if sample.text.strip()]
    assert scorable
    for sample in scorable:
        answer = bare_client.post("/v1/predict", json={"text": sample.text}).json()
        PredictResponse.model_validate(answer)
        assert answer["probability"] == pytest.approx(sample.probability, abs=SAMPLE_TOLERANCE)
        expected = "positive" if sample.probability >= card.decision_threshold else "negative"
        assert answer["label"] == expected
        assert answer["model_version"] == version_dir.name


def test_it_rejects_what_the_service_rejects(bare_client: TestClient) -> None:
    blank = bare_client.post("/v1/predict", json={"text": "   "})
    missing = bare_client.post("/v1/predict", json={})
    too_long = bare_client.post("/v1/predict", json={"text": "x" * (SETTINGS.max_text_chars + 1)})
    assert [r.status_code for r in (blank, missing, too_long)] == [422] * 3


def test_requests_that_arrive_together_share_a_model_call_and_get_their_own_answers() -> None:
    calls: list[list[str]] = []
    release = threading.Event()

    def score(texts: list[str]) -> list[float]:
        calls.append(list(texts))
        release.wait(5)  # the first call holds the model while more requests arrive
        return [float(len(text)) for text in texts]

    async def scenario() -> list[float]:
        batcher = GreedyBatcher(score, MAX_BATCH_TEXTS)
        batcher.start()
        first = [batcher.submit("a" * n) for n in (1, 2)]  # one loop iteration: one batch
        while not calls:
            await asyncio.sleep(0.001)
        later = [batcher.submit("b" * n) for n in range(3, MAX_BATCH_TEXTS + 5)]
        release.set()
        answers = await asyncio.gather(*first, *later)
        batcher.stop()
        return answers

    answers = asyncio.run(scenario())

    assert answers == [float(n) for n in range(1, MAX_BATCH_TEXTS + 5)]
    assert [len(call) for call in calls] == [2, MAX_BATCH_TEXTS, 2]
