"""Application factory: ``python -m app`` serves it (``uvicorn app.main:create_app --factory``
also works, without the process tuning of ``app.process``: its own log lines then follow the
root logger).

Importing this module does no I/O and loads no model; ``create_app`` wires one instance of
everything, and its lifespan loads, verifies and warms the model before the server reports
startup complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI

from app.core.batcher import MicroBatcher
from app.core.errors import describe_error_types, install_error_handlers
from app.core.input_metrics import InputMetrics
from app.core.predictor import Predictor
from app.core.registry import ModelRegistry
from app.http.middleware import ServiceMiddleware
from app.metrics import ServiceMetrics
from app.protocols import native as api
from app.protocols.native_schemas import reflect_setting_limits
from app.service import Service
from app.settings import Settings

logger = logging.getLogger(__name__)

_DESCRIPTION = f"""
Scores English text (movie reviews) as positive or negative with a TensorFlow SavedModel.

Every error has the shape `{{"error": {{"type": "...", "message": "..."}}}}`; `type` is one of
{describe_error_types()}.
"""


def _reflect_limits_in_openapi(app: FastAPI, settings: Settings) -> None:
    """Make this app's OpenAPI document state its own text and batch limits."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = reflect_setting_limits(
                generate(),
                max_text_chars=settings.max_text_chars,
                max_batch_items=settings.max_batch_items,
                max_explain_items=settings.max_explain_items,
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: Settings | None = None, *, on_model_change: Callable[[], None] | None = None
) -> FastAPI:
    """Build one independent service instance (its own model, batcher and metrics).

    It changes nothing process-wide: entry points do that (``app.process``). They pass
    ``on_model_change``, called on the event loop after the start-up load and after every
    model swap (``python -m app`` re-freezes the heap there).
    """
    settings = settings or Settings()
    metrics = ServiceMetrics(settings.prometheus_multiproc_dir)
    registry = ModelRegistry(
        settings.model_base_path,
        settings.model_name,
        metrics,
        # Drift and input metrics from each batch's score outputs (versions with ``score``).
        loader=functools.partial(
            Predictor.load, observe_inputs=InputMetrics(metrics.registry).observe
        ),
        settle_seconds=settings.model_settle_seconds,
    )

    batcher: MicroBatcher[Predictor] = MicroBatcher(
        registry.score,
        max_batch_size=settings.max_batch_size,
        max_wait_seconds=settings.max_batch_wait_ms / 1000,
        gather_seconds=settings.batch_gather_ms / 1000,
        queue_size=settings.queue_size,
        on_batch=metrics.observe_batch,
    )
    metrics.track_queue_depth(lambda: batcher.depth)
    service = Service(settings=settings, registry=registry, batcher=batcher, metrics=metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics.forget_dead_processes()
        await asyncio.to_thread(registry.refresh)
        if on_model_change is not None:
            on_model_change()
        batcher.start()
        watcher: asyncio.Task[None] | None = None
        if settings.reload_interval_seconds > 0:
            watcher = asyncio.create_task(
                registry.watch(settings.reload_interval_seconds, on_swap=on_model_change),
                name="model-watcher",
            )
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await batcher.drain(timeout_seconds=settings.graceful_shutdown_seconds)
            metrics.close()
            logger.info("shut down cleanly")

    app = FastAPI(
        title="Sentiment inference service",
        version="1.0.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = service
    _reflect_limits_in_openapi(app, settings)
    install_error_handlers(app)
    app.add_middleware(ServiceMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    api.install_routes(app, settings.api_key.get_secret_value() if settings.api_key else None)
    return app
