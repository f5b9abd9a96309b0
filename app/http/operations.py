"""Operations routes: liveness, readiness and metrics, open without the API key.

Probes and scrapers carry no key, and these routes reveal nothing a client sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel
from starlette.responses import Response

from app.core.scoring import ScoringCore
from app.http.errors import ErrorResponse
from app.metrics import CONTENT_TYPE_LATEST, ServiceMetrics
from app.protocols.base import RouteSpec, error_docs, json_response

_TAG = "operations"


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    status: Literal["ready"] = "ready"
    model_version: str


class OperationsRoutes:
    """/healthz, /readyz and /metrics of one app."""

    def __init__(self, core: ScoringCore, metrics: ServiceMetrics) -> None:
        self._core = core
        self._metrics = metrics

    async def healthz(self) -> Response:
        """Always 200 while the process serves HTTP, even before a model is loaded."""
        return json_response({"status": "ok"})

    async def readyz(self) -> Response:
        """200 only when a verified, warm model is live and the process is not stopping.

        The server tells the app at SIGTERM (``app.http.connections.DrainingServer``), so
        load balancers take the pod out of rotation at once while in-flight requests finish.
        """
        live = self._core.check_ready()
        return json_response({"status": "ready", "model_version": live.version_label})

    async def metrics(self) -> Response:
        """Metrics in the Prometheus text format."""
        return Response(self._metrics.render(), media_type=CONTENT_TYPE_LATEST)

    def routes(self) -> Sequence[RouteSpec]:
        exposition: dict[int | str, Any] = {200: {"content": {CONTENT_TYPE_LATEST: {}}}}
        return (
            RouteSpec("/healthz", self.healthz, "GET", HealthResponse, {}, "Liveness", _TAG, False),
            RouteSpec(
                "/readyz",
                self.readyz,
                "GET",
                ReadyResponse,
                error_docs(ErrorResponse, (503,)),
                "Readiness",
                _TAG,
                False,
            ),
            RouteSpec(
                "/metrics",
                self.metrics,
                "GET",
                None,
                exposition,
                "Prometheus metrics",
                _TAG,
                False,
                options={"response_class": Response},
            ),
        )
