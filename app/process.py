"""Process-wide tuning for a process that exists to serve: only entry points call this.

``create_app`` builds an app and changes nothing else in the process, so tests can build many
apps side by side. The entry points (``python -m app`` and each worker it spawns) are the
processes that belong to one app; they call ``tune_process`` before the server starts and
install ``refreeze_heap`` as the app's ``on_model_change`` hook.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
from collections.abc import Iterator

from app.settings import Settings

logger = logging.getLogger(__name__)

# TensorFlow's own variable (not a setting of ours): 2 hides its C++ INFO and WARNING lines.
_TF_LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
# Net container allocations between two young-generation collections (Python's default: 700).
# Under load the default ran a young collection every few requests, each walking every live
# request's objects; a higher threshold gave the event loop more requests per second. Request
# objects die by reference counting, so memory stays flat.
_YOUNG_GENERATION_THRESHOLD = 20_000


def quiet_tensorflow(log_level: str) -> None:
    """Hide TensorFlow's C++ start-up chatter in this process and the workers it spawns.

    Must run before TensorFlow is imported. At ``debug`` the chatter stays, and a value the
    operator set for ``TF_CPP_MIN_LOG_LEVEL`` is always kept.
    """
    if log_level != "debug":
        os.environ.setdefault(_TF_LOG_LEVEL_ENV, "2")


@contextlib.contextmanager
def _stderr_silenced(silence: bool) -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the block.

    TensorFlow's shared libraries print a few lines (oneDNN, absl) while they load, before
    ``TF_CPP_MIN_LOG_LEVEL`` is consulted; only the file descriptor can hide them. Python
    exceptions are unaffected: they propagate and are reported after the block.
    """
    if not silence:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def configure_tensorflow_threads(settings: Settings) -> None:
    """Import TensorFlow (quietly unless debugging) and apply the thread settings.

    Thread counts can only be set before TensorFlow's runtime starts in this process.
    """
    with _stderr_silenced(settings.log_level != "debug"):
        import tensorflow as tf
    try:
        if settings.tf_intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(settings.tf_intra_op_threads)
        if settings.tf_inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(settings.tf_inter_op_threads)
    except RuntimeError:
        logger.debug("TensorFlow already initialized; keeping its thread settings")


def configure_logging(settings: Settings) -> None:
    """Send the service's own log lines (the ``app`` loggers) to stderr at the set level.

    Process-wide, so entry points call it; uvicorn's logging configuration leaves these
    loggers alone (it keeps existing loggers).
    """
    app_logger = logging.getLogger("app")
    app_logger.setLevel(settings.log_level.upper())
    if not logging.getLogger().handlers and not app_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        app_logger.addHandler(handler)


def tune_process(settings: Settings) -> None:
    """Everything process-wide a serving process wants, before its server starts."""
    configure_logging(settings)
    quiet_tensorflow(settings.log_level)
    # The model thread re-takes the GIL several times per call; with Python's 5 ms default it
    # waits behind a busy event loop.
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
    _, *older = gc.get_threshold()
    gc.set_threshold(_YOUNG_GENERATION_THRESHOLD, *older)
    configure_tensorflow_threads(settings)


def refreeze_heap() -> None:
    """Exempt what is loaded now (TensorFlow, the live model) from garbage collection.

    TensorFlow brings millions of long-lived Python objects; every full collection would walk
    them all, stalling the event loop under load. Requests only
    create short-lived objects, which the young generations still collect. After a model
    swap the unfreeze lets the old model's objects be collected: a one-off full collection
    per reload rather than leaking every replaced model in the frozen generation.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
