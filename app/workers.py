"""Several uvicorn workers, each accepting on its own ``SO_REUSEPORT`` socket.

uvicorn's ``--workers`` hands every worker one shared listening socket, and whichever event
loop wakes first accepts every connection waiting. Keep-alive clients (load balancers, the
benchmark) open their connections in a burst, so in practice one worker got all of them and
the other sat idle. With a socket per worker the kernel spreads new connections over the
workers by hashing them, so two workers really do use two cores.

The supervisor here is deliberately small: it starts the workers, replaces one that dies,
gives up if a worker cannot start at all, and on SIGTERM or SIGINT lets every worker drain
(app.http.connections.DrainingServer) before exiting 0. A worker binds its socket itself and
only listens once its model is loaded, so a worker that dies or is still starting never holds
connections it cannot serve. The workers' drains are coordinated through a flag per worker
in shared memory (``SharedListenerFlags``): none tells its clients to go away before every
worker has stopped accepting, so no client reconnects into a listener about to close.

The gRPC port (``SENTIMENT_GRPC_PORT``) is shared the same way: each worker's grpc server
binds it with ``SO_REUSEPORT``, and the supervisor holds it too, so a port in use by another
program fails at start rather than in a worker.

When the process may run on exactly as many CPUs as it has workers, each worker is bound to
one of them (``SENTIMENT_WORKER_CPU_AFFINITY``, see ``worker_cpus``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Collection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

from app.http.connections import (
    ConnectionLimits,
    DrainingServer,
    ListenerCoordinator,
    guarded_protocol,
)
from app.main import create_app
from app.process import refreeze_heap, tune_process
from app.settings import Settings, WorkerCpuAffinity

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


class SharedListenerFlags:
    """One flag per worker slot in shared memory: 1 while that worker listens.

    Made by the supervisor (its multiprocessing context) and passed to each worker with its
    slot; the supervisor clears the slot of a worker that died (the kernel closed its socket).
    """

    def __init__(self, context: Any, count: int) -> None:
        self._flags = context.RawArray("b", count)

    def for_slot(self, slot: int) -> WorkerListener:
        return WorkerListener(self._flags, slot)

    def clear(self, slot: int) -> None:
        self._flags[slot] = 0


class WorkerListener:
    """One worker's view of the shared flags (an ``app.http.connections.ListenerCoordinator``)."""

    def __init__(self, flags: Any, slot: int) -> None:
        self._flags = flags
        self._slot = slot

    def opened(self) -> None:
        self._flags[self._slot] = 1

    def closed(self) -> None:
        self._flags[self._slot] = 0

    def any_open(self) -> bool:
        return any(self._flags)


def allowed_cpus() -> set[int]:
    """The CPUs this process may run on (its affinity mask; empty where it can't be read)."""
    get_affinity = getattr(os, "sched_getaffinity", None)
    return set(get_affinity(0)) if get_affinity is not None else set()


def worker_cpus(
    affinity: WorkerCpuAffinity, workers: int, allowed: Collection[int]
) -> list[int | None]:
    """The CPU each worker slot is bound to, None for none.

    A worker's event loop hands every batch to its model thread and the model thread hands
    the answers back: two wake-ups per batch. Where the kernel puts the two threads on
    different CPUs, each wake-up must reach the other CPU (on a VM, an interrupt through the
    hypervisor), and at low load a request waits for both. Bound to one CPU, the worker's
    threads wake each other where they are. A worker then can't borrow an idle CPU, so this is
    done only when the workers have a CPU each and nothing more to borrow: the process may
    run on exactly as many CPUs as it has workers (``auto``), never with ``off``.
    """
    if affinity == "off" or workers < 2 or len(allowed) != workers:
        return [None] * workers
    return list(sorted(allowed))


def _run_worker(cpu: int | None, target: Callable[..., None], args: tuple[Any, ...]) -> None:
    """A worker process's entry: bound to its CPU first, so every thread it starts later (the
    model thread, TensorFlow's, gRPC's) inherits the binding."""
    if cpu is not None:
        _bind_process(cpu)
    target(*args)


def _bind_process(cpu: int) -> None:
    """Bind every thread of this process to ``cpu``: importing the worker's modules already
    started a few (numpy's BLAS pool), and a binding only passes to threads started after it."""
    try:
        for task in Path("/proc/self/task").iterdir():
            os.sched_setaffinity(int(task.name), {cpu})
    except OSError as exc:  # no /proc, or the CPU left the process's cpuset meanwhile
        logger.warning("worker cannot bind to CPU %d (%s); running unbound", cpu, exc)


def serve_worker(settings: Settings, coordinator: ListenerCoordinator | None = None) -> None:
    """A worker process: tuned, its own socket, then uvicorn until it is told to stop."""
    tune_process(settings)
    server = DrainingServer(uvicorn_config(settings), coordinator)
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
    by default the service's ``serve_worker`` (with its slot in the shared listener flags),
    or the benchmark's ceiling app, which must spread connections over its workers exactly as
    the service does to be a fair yardstick.
    """

    def __init__(
        self, settings: Settings, worker: Callable[[Settings], None] | None = None
    ) -> None:
        self._settings = settings
        self._worker = worker  # None: the service's own workers (``serve_worker``)
        self._context = multiprocessing.get_context("spawn")
        self._listeners = SharedListenerFlags(self._context, settings.workers)
        self._workers: list[BaseProcess] = []
        self._cpus = worker_cpus(settings.worker_cpu_affinity, settings.workers, allowed_cpus())
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
        reservations = [reservation]
        if self._settings.grpc_port:
            reservations.append(reuse_port_socket(self._settings.host, self._settings.grpc_port))
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._request_stop)
        count = self._settings.workers
        logger.info("starting %d workers on %s:%d", count, self._settings.host, port)
        if self._cpus[0] is not None:
            logger.info("each worker bound to one CPU: %s", ", ".join(map(str, self._cpus)))
        try:
            self._workers = [self._start_worker(slot) for slot in range(count)]
            while not self._stopping.wait(_SUPERVISE_INTERVAL_SECONDS):
                self._replace_dead_workers()
        finally:
            self._stop_workers()
            for held in reservations:
                held.close()
        return 1 if self._failed else 0

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping.set()

    def _start_worker(self, slot: int) -> BaseProcess:
        self._listeners.clear(slot)  # a dead predecessor's socket is closed
        if self._worker is None:  # the service's workers coordinate their drains
            target: Callable[..., None] = serve_worker
            args: tuple[Any, ...] = (self._settings, self._listeners.for_slot(slot))
        else:
            target, args = self._worker, (self._settings,)
        worker = self._context.Process(
            target=_run_worker, args=(self._cpus[slot], target, args), name="sentiment-worker"
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
            self._workers[index] = self._start_worker(index)

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
