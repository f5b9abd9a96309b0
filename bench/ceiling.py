"""The HTTP ceiling: the service's framework and request validation, with a constant answer.

Whatever the real service adds per request (middleware, metrics, queueing, batching,
TensorFlow) can only cost more than this app, so its requests/s and latency are the yardstick
the benchmark divides by. To be a fair yardstick it does everything the service's
`POST /v1/predict` route does except scoring: FastAPI, the very same pydantic request model
(`app.protocols.native_schemas.PredictRequest`), the same settings-dependent length check, and
an answer of the same shape serialised the same way (orjson into a plain Response).

Run it like the service: `python -m bench.ceiling` takes the service's `SENTIMENT_HOST`,
`SENTIMENT_PORT` and `SENTIMENT_WORKERS` and runs that many workers under the service's own
supervisor (`app.workers.Supervisor`), each on its own `SO_REUSEPORT` socket, so connections
spread over the workers as they do for the service. A one-worker ceiling against a two-worker
service would compare one core with two. Each worker is plain uvicorn (uvloop, httptools, no
access log): no TensorFlow, no connection guards, and never bound to a CPU per worker.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import orjson
import uvicorn
from fastapi import FastAPI
from starlette.responses import Response

from app.core.errors import InvalidInputError
from app.http.errors import error_response
from app.protocols.native_schemas import PredictRequest, PredictResponse
from app.settings import Settings
from app.workers import Supervisor, reuse_port_socket

APP = "bench.ceiling:create_app"

_JSON = "application/json"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ceiling app; no I/O, no model."""
    max_text_chars = (settings or Settings()).max_text_chars
    app = FastAPI(title="bench ceiling", docs_url=None, redoc_url=None, openapi_url=None)
    answer = {"label": "positive", "probability": 0.5, "model_version": "1"}

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(orjson.dumps({"status": "ok"}), media_type=_JSON)

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response(orjson.dumps({"status": "ready", "model_version": "1"}), media_type=_JSON)

    @app.post("/v1/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> Response:
        if len(body.text) > max_text_chars:
            return error_response(InvalidInputError("too long"))
        return Response(orjson.dumps(answer), media_type=_JSON)

    return app


def serve_bench_worker(app: str, settings: Settings) -> None:
    """One worker of a benchmark app (``module:factory``) on its own ``SO_REUSEPORT`` socket:
    plain uvicorn with uvloop, httptools and no access log (the ceiling's and bench.bare's)."""
    config = uvicorn.Config(
        app,
        factory=True,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
    uvicorn.Server(config).run(sockets=[reuse_port_socket(settings.host, settings.port)])


def run_bench_workers(settings: Settings, worker: Callable[[Settings], None]) -> int:
    """``settings.workers`` workers under the service's supervisor (one runs in this process)."""
    if settings.workers == 1:
        worker(settings)
        return 0
    return Supervisor(settings, worker=worker).run()


def serve_ceiling_worker(settings: Settings) -> None:
    """One ceiling worker (a Supervisor worker target)."""
    serve_bench_worker(APP, settings)


def main() -> int:
    """``python -m bench.ceiling``: ``SENTIMENT_WORKERS`` ceiling workers until SIGTERM.

    Never bound to a CPU per worker (``SENTIMENT_WORKER_CPU_AFFINITY``): the binding pays
    for the service's two threads per worker, and the ceiling, with one, measured a little
    slower bound (docs/benchmark.md), so the yardstick keeps the kernel's placement.
    """
    settings = Settings().model_copy(update={"worker_cpu_affinity": "off"})
    return run_bench_workers(settings, serve_ceiling_worker)


if __name__ == "__main__":
    sys.exit(main())
