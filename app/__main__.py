"""``python -m app``: run the service with the server settings from the environment."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from types import FrameType

from pydantic import ValidationError
from uvicorn.config import STARTUP_FAILURE

from app.http.connections import DrainingServer
from app.process import quiet_tensorflow, tune_process
from app.settings import Settings, invalid_settings_message
from app.workers import Supervisor, uvicorn_config

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


@contextlib.contextmanager
def shared_metrics_directory(settings: Settings) -> Iterator[None]:
    """Give several workers one metrics directory, empty at start (prometheus-client's rule).

    prometheus-client picks multiprocess storage when it is imported, so the variable must be
    in the environment the workers inherit; the workers' Settings then read the same value.
    A directory we create is removed when the server stops.
    """
    given = settings.prometheus_multiproc_dir
    if given is not None:
        for stale in given.glob("*.db"):
            stale.unlink()
        yield
        return
    if settings.workers == 1:
        yield
        return
    directory = tempfile.mkdtemp(prefix="sentiment-metrics-")
    os.environ[_MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    """Serve ``create_app``: one process, or a supervisor with ``workers`` worker processes."""
    try:
        settings = Settings()
    except ValidationError as exc:  # say what to fix, not where pydantic noticed it
        sys.exit(invalid_settings_message(exc))
    quiet_tensorflow(settings.log_level)  # before any TensorFlow import, inherited by workers
    with shared_metrics_directory(settings):
        if settings.workers > 1:
            status = Supervisor(settings).run()
        else:
            # Uvicorn drains in-flight requests on SIGTERM, then re-raises the signal with the
            # handler that was installed before it started. Make that handler a normal exit,
            # so a graceful stop (Kubernetes, docker stop) reports status 0, not "killed".
            signal.signal(signal.SIGTERM, _exit_cleanly)
            tune_process(settings)
            server = DrainingServer(uvicorn_config(settings))
            server.run()
            status = 0 if server.started else STARTUP_FAILURE
    sys.exit(status)


if __name__ == "__main__":
    main()
