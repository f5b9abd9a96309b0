"""The bare batching server: the simplest real server of the model on the service's stack.

The model-bound limit (bench.report) is arithmetic: the ceiling's CPU per request plus the
model's per text, as if handing texts to the model and answers back cost nothing. This app is
what that arithmetic stands for, made real and kept as simple as batching allows, so the
benchmark can tell what a server on this stack reaches from what the service's own features
cost (request and input metrics, versions and labels, gRPC, limits, the model-version header):

* the ceiling's app (bench.ceiling): FastAPI, the service's request model
  (``PredictRequest``), its length check, an answer of the same shape serialised by orjson;
* the service's newest version, loaded as the service loads it (``load_saved_model``: the
  inline session), scored with the signature the service scores with;
* one model thread per worker and greedy batching: a request that finds the model idle starts
  a batch in the loop's next iteration, requests arriving meanwhile form the next batch,
  which starts the moment the model is free (at most ``MAX_BATCH_TEXTS``);
* the service's process tuning (``tune_process``: TensorFlow threads, GIL switch interval,
  garbage collector) and workers (``app.workers.Supervisor``, so also the service's binding
  of each worker to a CPU), from the same ``SENTIMENT_*`` settings.

Nothing else: no metrics, no queue limit, no versions, no gRPC, no drain. It is a yardstick,
never something to deploy. ``python -m bench.bare`` runs it like the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import queue
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.responses import Response

from app.core.errors import InvalidInputError
from app.core.inline_session import load_saved_model
from app.http.errors import error_response
from app.process import tune_process
from app.protocols.native_schemas import PredictRequest, PredictResponse
from app.settings import Settings
from bench.ceiling import run_bench_workers, serve_bench_worker
from bench.inprocess import newest_version_dir
from contract import (
    CARD_FILE,
    INPUT_NAME,
    PROBABILITY_OUTPUT,
    SCORE_SIGNATURE_NAME,
    SIGNATURE_NAME,
    ModelCard,
)

APP = "bench.bare:create_app"
MAX_BATCH_TEXTS = 64  # the service's default max_batch_size

_JSON = "application/json"

_Waiting = tuple[str, "asyncio.Future[float]"]


class GreedyBatcher:
    """Texts in, probabilities out: one model thread, a batch whenever the model is free."""

    def __init__(self, score: Callable[[list[str]], list[float]]) -> None:
        self._score = score
        self._waiting: list[_Waiting] = []
        self._busy = False
        self._jobs: queue.SimpleQueue[list[_Waiting] | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the model thread; call from the event loop that awaits the answers."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._work, name="bare-model", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._jobs.put(None)

    def submit(self, text: str) -> asyncio.Future[float]:
        """The future probability of ``text`` (event loop only)."""
        assert self._loop is not None, "start() first"
        future: asyncio.Future[float] = self._loop.create_future()
        self._waiting.append((text, future))
        if not self._busy and len(self._waiting) == 1:
            self._loop.call_soon(self._dispatch)  # the rest of this loop iteration joins
        return future

    def _dispatch(self) -> None:
        if self._busy or not self._waiting:
            return
        batch = self._waiting[:MAX_BATCH_TEXTS]
        del self._waiting[:MAX_BATCH_TEXTS]
        self._busy = True
        self._jobs.put(batch)

    def _work(self) -> None:
        loop = self._loop
        assert loop is not None
        while (batch := self._jobs.get()) is not None:
            probabilities = self._score([text for text, _ in batch])
            loop.call_soon_threadsafe(self._finish, batch, probabilities)

    def _finish(self, batch: Sequence[_Waiting], probabilities: Sequence[float]) -> None:
        self._busy = False
        self._dispatch()  # the model starts on the next batch before this one is answered
        for (_, future), probability in zip(batch, probabilities, strict=True):
            if not future.done():
                future.set_result(probability)


class ModelScorer:
    """The newest version under the service's model base, loaded as the service loads it:
    texts → probabilities with the signature the service scores with (blocking), and the
    card's decision threshold for the labels."""

    def __init__(self, settings: Settings) -> None:
        version_dir = newest_version_dir(settings.model_base_path)
        card = ModelCard.model_validate_json((version_dir / CARD_FILE).read_bytes())
        self.threshold = card.decision_threshold
        self.version = version_dir.name
        self._loaded, self._as_input = load_saved_model(version_dir)  # owns the session
        signatures = self._loaded.signatures
        name = SCORE_SIGNATURE_NAME if SCORE_SIGNATURE_NAME in signatures else SIGNATURE_NAME
        self._signature = signatures[name]

    def __call__(self, texts: list[str]) -> list[float]:
        outputs = self._signature(**{INPUT_NAME: self._as_input(texts)})
        probabilities: list[float] = outputs[PROBABILITY_OUTPUT].reshape(-1).tolist()
        return probabilities


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the bare app; the model loads in its lifespan (no I/O here)."""
    settings = settings or Settings()
    max_text_chars = settings.max_text_chars
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scorer = state["scorer"] = await asyncio.to_thread(ModelScorer, settings)
        await asyncio.to_thread(scorer, ["warm up"] * MAX_BATCH_TEXTS)
        gc.freeze()  # as the service does: TensorFlow's objects are never collected
        batcher = state["batcher"] = GreedyBatcher(scorer)
        batcher.start()
        yield
        batcher.stop()

    app = FastAPI(
        title="bench bare batching server",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response(orjson.dumps({"status": "ready"}), media_type=_JSON)

    @app.post("/v1/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> Response:
        if len(body.text) > max_text_chars:
            return error_response(InvalidInputError("too long"))
        scorer: ModelScorer = state["scorer"]
        probability = await state["batcher"].submit(body.text)
        label = "positive" if probability >= scorer.threshold else "negative"
        answer = {"label": label, "probability": probability, "model_version": scorer.version}
        return Response(orjson.dumps(answer), media_type=_JSON)

    return app


def serve_bare_worker(settings: Settings) -> None:
    """One bare worker, tuned as a service worker is (a Supervisor worker target)."""
    tune_process(settings)
    serve_bench_worker(APP, settings)


def main() -> int:
    """``python -m bench.bare``: ``SENTIMENT_WORKERS`` bare workers until SIGTERM."""
    return run_bench_workers(Settings(), serve_bare_worker)


if __name__ == "__main__":
    sys.exit(main())
