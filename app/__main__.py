"""``python -m app``: run uvicorn with the server settings from the environment."""

from __future__ import annotations

import uvicorn

from app.settings import Settings


def main() -> None:
    """Serve ``create_app`` with uvloop/httptools and a bounded graceful shutdown."""
    settings = Settings()
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
