"""The naive peer: FastAPI with one `def` endpoint calling the SavedModel per request.

What many first deployments look like: the model loaded at startup, a synchronous endpoint
(Starlette runs it in its thread pool) that calls `serving_default` on the one text, and
`uvicorn --workers N`. No batching, no queue, TensorFlow's default threads. It takes the body
of our `POST /v1/predict` and answers the label and probability.

`python -m bench.peers.naive_fastapi --model-dir DIR --port P --workers N`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from pydantic import BaseModel

from bench.peers import MODEL_DIR_ENV, SIGNATURE, answer


class PredictRequest(BaseModel):
    text: str


def create_app() -> FastAPI:
    """The app; each worker loads the model (from the environment) in its lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import tensorflow as tf

        app.state.model = tf.saved_model.load(os.environ[MODEL_DIR_ENV])
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/v1/predict")
    def predict(body: PredictRequest, request: Request) -> dict[str, Any]:
        import tensorflow as tf

        signature: Any = request.app.state.model.signatures[SIGNATURE]
        return answer(float(signature(text=tf.constant([body.text]))["probability"][0][0]))

    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.naive_fastapi")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ[MODEL_DIR_ENV] = args.model_dir  # the workers read it in create_app
    uvicorn.run(
        "bench.peers.naive_fastapi:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
