"""The per-app objects routes need, bundled so ``app.state`` holds exactly one thing."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.batcher import MicroBatcher
from app.core.predictor import Predictor
from app.core.registry import ModelRegistry
from app.metrics import ServiceMetrics
from app.settings import Settings

# Set in the server's lifespan state (``scope["state"]`` of every later request) when the
# process has been told to stop: /readyz answers 503 and responses close their connection.
DRAINING_STATE_KEY = "sentiment_draining"


@dataclass(slots=True)
class Service:
    """Everything one app instance owns; created by ``create_app``, never global."""

    settings: Settings
    registry: ModelRegistry
    batcher: MicroBatcher[Predictor]
    metrics: ServiceMetrics
