"""``python -m app``: run uvicorn with the server settings from the environment."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import uvicorn

from app.settings import Settings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main() -> None:
    """Serve ``create_app`` with uvloop/httptools and a bounded graceful shutdown."""
    settings = Settings()
    # Uvicorn drains in-flight requests on SIGTERM, then re-raises the signal with the
    # handler that was installed before it started. Make that handler a normal exit, so a
    # graceful stop (Kubernetes, systemd, docker stop) reports status 0, not "killed".
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=settings.access_log,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds),
    )


if __name__ == "__main__":
    main()
