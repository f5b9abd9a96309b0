"""Application factory: ``python -m app`` serves it (``uvicorn app.main:create_app --factory``
also works, without the process tuning of ``app.process``: its own log lines then follow the
root logger).

Importing this module does no I/O and loads no model. ``create_app`` builds everything one app
owns (its metrics, its scoring core with the registry, batcher and explainer, its protocol
adapters and error renderer) and wires them; its lifespan loads, verifies and warms the model
before the server reports startup complete, and on shutdown closes all of it. Adding a
protocol is one more adapter in ``_adapters``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import FastAPI

from app.core.errors import describe_error_types
from app.core.scoring import ScoringCore
from app.http.connections import ON_CLOSE_STATE_KEY, ON_DRAIN_STATE_KEY
from app.http.errors import ErrorRenderer
from app.http.middleware import ServiceMiddleware
from app.http.operations import OperationsRoutes
from app.http.playground import playground_route
from app.metrics import ServiceMetrics
from app.protocols.base import ProtocolAdapter, api_key_guard, install_routes
from app.protocols.grpc import GrpcProtocol
from app.protocols.native import NativeProtocol
from app.protocols.open_inference import OpenInferenceProtocol
from app.protocols.tfserving import TFServingProtocol
from app.settings import Settings

logger = logging.getLogger(__name__)

_DESCRIPTION = """
Scores English text (movie reviews) as positive or negative with a TensorFlow SavedModel.

Every error has the shape `{{"error": {{"type": "...", "message": "..."}}}}`; `type` is one of
{error_types}.
"""


API_VERSION = "1.0.0"


def _adapters(core: ScoringCore, metrics: ServiceMetrics) -> Sequence[ProtocolAdapter]:
    """Every protocol this app speaks, hot path first (routes are tried in this order);
    gRPC has no routes: its server runs in its lifespan, on ``SENTIMENT_GRPC_PORT``."""
    return (
        NativeProtocol(core),
        TFServingProtocol(core),
        OpenInferenceProtocol(core),
        GrpcProtocol(core, metrics, API_VERSION),
    )


def _openapi_described_by(app: FastAPI, adapters: Sequence[ProtocolAdapter]) -> None:
    """Let each adapter adjust this app's OpenAPI document once, when it is first built."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            for adapter in adapters:
                adapter.describe(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: Settings | None = None, *, on_model_change: Callable[[], None] | None = None
) -> FastAPI:
    """Build one independent service instance (its own model, batcher, metrics and state).

    It changes nothing process-wide: entry points do that (``app.process``). They pass
    ``on_model_change``, called on the event loop after the start-up load and after every
    model swap (``python -m app`` re-freezes the heap there).
    """
    settings = settings or Settings()
    metrics = ServiceMetrics(settings.prometheus_multiproc_dir)
    core = ScoringCore(settings, metrics)
    adapters = _adapters(core, metrics)
    errors = ErrorRenderer([a.error_shape for a in adapters if a.error_shape is not None])

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(metrics.close)  # last: the final tally reaches the metrics
            await stack.enter_async_context(core.running(on_model_change))
            for adapter in adapters:  # left first, while the core still scores
                await stack.enter_async_context(adapter.lifespan())

            def start_closing() -> None:
                for adapter in adapters:
                    adapter.start_closing()

            # The server calls these at SIGTERM (app.http.connections.DrainingServer).
            yield {ON_DRAIN_STATE_KEY: core.start_draining, ON_CLOSE_STATE_KEY: start_closing}
        logger.info("shut down cleanly")

    app = FastAPI(
        title="Sentiment inference service",
        version=API_VERSION,
        description=_DESCRIPTION.format(error_types=describe_error_types()),
        lifespan=lifespan,
    )
    app.state.core = core  # the one thing app.state holds
    _openapi_described_by(app, adapters)
    errors.install(app)
    app.add_middleware(
        ServiceMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes, errors=errors
    )
    guard = api_key_guard(core.auth)
    for adapter in adapters:
        install_routes(app, adapter.routes(), guard)
    install_routes(app, [playground_route(), *OperationsRoutes(core, metrics).routes()], guard)
    return app
