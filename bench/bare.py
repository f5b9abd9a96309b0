"""The bare batching server: the simplest real server of the model on the service's stack.

The model-bound limit (bench.report) is arithmetic: the ceiling's CPU per request plus the
model's per text, as if handing texts to the model and answers back cost nothing. This app is
what that arithmetic stands for, made real and kept as simple as batching allows, so the
benchmark can tell what a server on this stack reaches from what the service's own features
cost (request and input metrics, versions and labels, gRPC, limits, the model-version header):

* the ceiling's app (bench.ceiling): FastAPI, the service's request model
  (``PredictRequest``), its length check, an answer of the same shape serialised by orjson;
* the service's newest version, loaded, verified and scored by the service's own
  ``Predictor`` (the inline session, the signature the service scores with, the card's label
  rule), with no input metrics;
* one model thread per worker and greedy batching: a request that finds the model idle starts
  a batch in the loop's next iteration, requests arriving meanwhile form the next batch,
  which starts the moment the model is free (at most ``SENTIMENT_MAX_BATCH_SIZE`` texts);
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
from app.core.predictor import Predictor
from app.http.errors import error_response
from app.process import tune_process
from app.protocols.native_schemas import PredictRequest, PredictResponse
from app.settings import Settings
from bench.ceiling import run_bench_workers, serve_bench_worker
from bench.inprocess import newest_version_dir

APP = "bench.bare:create_app"

_JSON = "application/json"

_Waiting = tuple[str, "asyncio.Future[float]"]


class GreedyBatcher:
    """Texts in, probabilities out: one model thread, a batch whenever the model is free."""

    def __init__(self, score: Callable[[list[str]], list[float]], max_batch_texts: int) -> None:
        self._score = score
        self._max_batch_texts = max_batch_texts
        self._waiting: list[_Waiting] = []
        self._busy = False
        self._jobs: queue.SimpleQueue[list[_Waiting] | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the model thread; call from the event loop that awaits the answers."""
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._work, name="bare-model", daemon=True).start()

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
        batch = self._waiting[: self._max_batch_texts]
        del self._waiting[: self._max_batch_texts]
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


def load_newest_version(settings: Settings) -> Predictor:
    """The newest version under the service's model base, loaded, verified and warmed as the
    service loads it (with no input metrics: nothing observes it)."""
    return Predictor.load(newest_version_dir(settings.model_base_path))


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the bare app; the model loads in its lifespan (no I/O here)."""
    settings = settings or Settings()
    max_text_chars = settings.max_text_chars
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        predictor = state["predictor"] = await asyncio.to_thread(load_newest_version, settings)
        gc.freeze()  # as the service does: TensorFlow's objects are never collected

        def score(texts: list[str]) -> list[float]:
            probabilities: list[float] = predictor.predict_probabilities(texts).tolist()
            return probabilities

        batcher = state["batcher"] = GreedyBatcher(score, settings.max_batch_size)
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
        predictor: Predictor = state["predictor"]
        probability = await state["batcher"].submit(body.text)
        [label] = predictor.labels_for([probability])
        answer = {
            "label": label,
            "probability": probability,
            "model_version": predictor.version_label,
        }
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
