"""Several uvicorn workers, each accepting on its own ``SO_REUSEPORT`` socket.

uvicorn's ``--workers`` hands every worker one shared listening socket, and whichever event
loop wakes first accepts every connection waiting. Keep-alive clients (load balancers, the
benchmark) open their connections in a burst, so in practice one worker got all of them and
the other sat idle. With a socket per worker the kernel spreads new connections over the
workers by hashing them, so two workers really do use two cores.

The supervisor here is deliberately small: it starts the workers, replaces one that dies,
gives up if a worker cannot start at all, and on SIGTERM or SIGINT lets every worker drain
(uvicorn's graceful shutdown, with app.http.connections' gentler close of idle connections)
before exiting 0. A worker binds its socket itself and only listens once its model is loaded,
so a worker that dies or is still starting never holds connections it cannot serve.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

from app.http.connections import ConnectionLimits, DrainingServer, guarded_protocol
from app.main import create_app
from app.process import refreeze_heap, tune_process
from app.settings import Settings

# uvicorn's logging configuration gives this logger a handler in the parent process too.
logger = logging.getLogger("uvicorn.error")

APP = "app.workers:serving_app"
_SUPERVISE_INTERVAL_SECONDS = 0.5
_KILL_GRACE_SECONDS = 5.0


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A bound, not yet listening TCP socket that other sockets may share the port with."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    """The one uvicorn configuration, for a single process and for each worker alike."""
    return uvicorn.Config(
        APP,
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        loop="uvloop",
        # httptools, with the request-head size and time limits uvicorn lacks
        # (app.http.connections).
        http=guarded_protocol(
            ConnectionLimits(
                max_head_bytes=settings.max_request_head_bytes,
                head_timeout_seconds=settings.request_head_timeout_seconds,
                body_timeout_seconds=settings.request_body_timeout_seconds,
            )
        ),
        timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds),
    )


def serving_app() -> FastAPI:
    """The factory uvicorn calls in a serving process: the app with the heap-freeze hook."""
    return create_app(on_model_change=refreeze_heap)


def serve_worker(settings: Settings) -> None:
    """A worker process: tuned, its own socket, then uvicorn until it is told to stop."""
    tune_process(settings)
    server = DrainingServer(uvicorn_config(settings))
    try:
        sock = reuse_port_socket(settings.host, settings.port)
    except OSError as exc:
        logger.error("worker cannot bind %s:%d: %s", settings.host, settings.port, exc)
        sys.exit(STARTUP_FAILURE)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class Supervisor:
    """Keeps ``settings.workers`` workers running until SIGTERM or SIGINT.

    ``worker`` is what each worker process runs (a module-level function, for ``spawn``):
    the service's ``serve_worker``, or the benchmark's ceiling app, which must spread
    connections over its workers exactly as the service does to be a fair yardstick.
    """

    def __init__(
        self, settings: Settings, worker: Callable[[Settings], None] = serve_worker
    ) -> None:
        self._settings = settings
        self._worker = worker
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[BaseProcess] = []
        self._stopping = threading.Event()
        self._failed = False

    def run(self) -> int:
        """Serve until stopped; the exit status for the parent process."""
        # Holding the port (bound, never listening: it receives no connections) fails fast if
        # it is taken and turns port 0 into one real port every worker shares.
        uvicorn_config(self._settings)  # configures logging for this process
        reservation = reuse_port_socket(self._settings.host, self._settings.port)
        port = reservation.getsockname()[1]
        self._settings = self._settings.model_copy(update={"port": port})
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._request_stop)
        count = self._settings.workers
        logger.info("starting %d workers on %s:%d", count, self._settings.host, port)
        try:
            self._workers = [self._start_worker() for _ in range(count)]
            while not self._stopping.wait(_SUPERVISE_INTERVAL_SECONDS):
                self._replace_dead_workers()
        finally:
            self._stop_workers()
            reservation.close()
        return 1 if self._failed else 0

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping.set()

    def _start_worker(self) -> BaseProcess:
        worker = self._context.Process(
            target=self._worker, args=(self._settings,), name="sentiment-worker"
        )
        worker.start()
        return worker

    def _replace_dead_workers(self) -> None:
        for index, worker in enumerate(self._workers):
            if worker.is_alive():
                continue
            if worker.exitcode == STARTUP_FAILURE:
                # It would fail the same way on every restart: stop instead of crash-looping.
                logger.error("worker %d could not start; stopping", worker.pid)
                self._failed = True
                self._stopping.set()
                return
            logger.error(
                "worker %d died (exit code %s); starting a new one", worker.pid, worker.exitcode
            )
            self._workers[index] = self._start_worker()

    def _stop_workers(self) -> None:
        """SIGTERM each worker (uvicorn drains in-flight requests), kill what outlives it."""
        for worker in self._workers:
            if worker.is_alive():
                worker.terminate()
        deadline = time.monotonic() + self._settings.graceful_shutdown_seconds + _KILL_GRACE_SECONDS
        for worker in self._workers:
            worker.join(max(deadline - time.monotonic(), 0.0))
            if worker.is_alive():
                logger.error("worker %d did not stop in time; killing it", worker.pid)
                worker.kill()
                worker.join()
