"""Dynamic micro-batching: concurrent requests for the same model version share one model call.

A model call costs about the same for one text as for dozens, so the service's throughput
comes from gathering concurrent requests. One dedicated thread runs the model (TensorFlow
releases the GIL while it computes, so the event loop keeps serving HTTP meanwhile), and
the event loop decides what it runs:

* When the model is idle, the first request schedules a dispatch with ``call_soon``: every
  request the loop parses in the same iteration joins that batch, and no timer is involved,
  so a lone request waits for nothing (``max_wait_seconds`` > 0 optionally trades latency
  for fuller batches).
* While the model is busy, requests queue. When the call ends with requests already
  queued, the service is under load: the next batch may keep filling for up to
  ``gather_seconds`` and starts the moment it holds ``max_batch_size`` texts. Each call has a
  fixed CPU cost on top of its texts, and under load the CPU is what runs out, so fuller
  batches mean less CPU per request. An idle model never waits (latency at low load).

A request is submitted with the model that must score it (the predictor resolved at the start
of the request), and a batch only ever holds requests for one model: a version swapped in
while requests wait does not score them, and several loaded versions take turns.

The model thread is woken once per batch and hands results back with one
``call_soon_threadsafe`` per batch: the two threads hardly compete for the GIL however
many requests are in flight. The model thread runs as ``SCHED_BATCH`` on Linux, so
waking it does not preempt the event loop thread that holds the GIL (see
``run_without_wakeup_preemption``). The queue is bounded: when it is full a request is refused
at once (429) instead of piling up latency and memory. A failing model call fails exactly the
requests of its batch.

Each request carries the protocol it came by (``REQUEST_PROTOCOL``), and the model thread
says how the batch it scores splits by protocol (``batch_protocols``), so the input metrics
observed inside the model call carry the protocol although one batch can mix REST and gRPC.

All queue state lives on the event loop thread, so it needs no lock.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from app.core.errors import InferenceError, NotReadyError, OverloadedError, ServiceError

logger = logging.getLogger(__name__)

Model = TypeVar("Model", bound=Hashable)
"""What scores a batch (the service: a Predictor); requests for different models never mix."""

ScoreFunction = Callable[[Model, list[str]], npt.NDArray[np.float32]]
"""Scores a batch with a model: ``[N, 2]`` rows of (probability, logit)."""
BatchObserver = Callable[[int, float], None]

REQUEST_PROTOCOL: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_protocol", default="rest"
)
"""The protocol of the request being served, read by ``submit``: HTTP requests keep the
default, the gRPC server sets ``"grpc"`` in each call's own context."""
_BATCH_PROTOCOLS: contextvars.ContextVar[tuple[tuple[str, int], ...]] = contextvars.ContextVar(
    "batch_protocols", default=()
)


def batch_protocols() -> tuple[tuple[str, int], ...]:
    """The batch being scored, as consecutive (protocol, number of texts) runs in its text
    order (model thread, during the score call; empty outside one)."""
    return _BATCH_PROTOCOLS.get()


@dataclass(slots=True)
class ScoredTexts:
    """The probabilities and logits of one request's texts, in order."""

    probabilities: list[float]
    logits: list[float]


@dataclass(slots=True)
class _Pending:
    texts: Sequence[str]
    future: asyncio.Future[ScoredTexts]
    protocol: str


@dataclass(slots=True)
class _Queue:
    """The requests waiting for one model, oldest first, and their text count."""

    items: collections.deque[_Pending] = field(default_factory=collections.deque)
    texts: int = 0


_STOP = None  # sentinel on the job queue: the model thread exits


class MicroBatcher(Generic[Model]):
    """Gathers concurrent ``submit`` calls into single calls of ``score`` on one thread."""

    def __init__(
        self,
        score: ScoreFunction[Model],
        *,
        max_batch_size: int,
        max_wait_seconds: float = 0.0,
        gather_seconds: float = 0.0,
        queue_size: int,
        on_batch: BatchObserver | None = None,
    ) -> None:
        self._score = score
        self._max_batch_size = max_batch_size
        self._max_wait_seconds = max_wait_seconds
        self._gather_seconds = gather_seconds
        self._queue_size = queue_size
        self._on_batch = on_batch
        # One queue per model with requests waiting, in turn order (a served one moves last).
        self._queues: dict[Model, _Queue] = {}
        self._depth = 0  # requests waiting, over every queue
        self._jobs: queue.SimpleQueue[tuple[Model, list[_Pending]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting = False
        self._model_busy = False
        self._scheduled: asyncio.Handle | None = None  # the pending call of _dispatch

    @property
    def depth(self) -> int:
        """Requests waiting for the model (not counting the batch being scored)."""
        return self._depth

    def start(self) -> None:
        """Start the model thread; call from the event loop that will await results."""
        self._loop = asyncio.get_running_loop()
        self._accepting = True
        self._thread = threading.Thread(target=self._work, name="model-batcher", daemon=True)
        self._thread.start()

    async def submit(self, model: Model, texts: Sequence[str]) -> ScoredTexts:
        """Score ``texts`` with ``model`` in an upcoming batch; OverloadedError at once if the
        queue is full."""
        loop = self._loop
        if not self._accepting or loop is None:
            raise NotReadyError("The service is not accepting predictions.")
        if self._depth >= self._queue_size:
            raise OverloadedError()
        waiting = self._queues.get(model)
        if waiting is None:
            waiting = self._queues[model] = _Queue()
        future: asyncio.Future[ScoredTexts] = loop.create_future()
        waiting.items.append(_Pending(texts, future, REQUEST_PROTOCOL.get()))
        waiting.texts += len(texts)
        self._depth += 1
        if not self._model_busy:
            if self._scheduled is None:
                if self._max_wait_seconds > 0:
                    self._scheduled = loop.call_later(self._max_wait_seconds, self._dispatch)
                else:
                    self._scheduled = loop.call_soon(self._dispatch)
            elif waiting.texts >= self._max_batch_size:
                self._dispatch()  # full: waiting any longer gains nothing
        return await future

    async def drain(self, timeout_seconds: float) -> None:
        """Stop accepting, let queued requests finish (bounded), then stop the thread."""
        self._accepting = False
        deadline = time.monotonic() + timeout_seconds
        while (self._depth or self._model_busy) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for waiting in self._queues.values():
            for item in waiting.items:
                if not item.future.done():
                    item.future.set_exception(NotReadyError("The service is shutting down."))
        self._queues.clear()
        self._depth = 0
        self._jobs.put(_STOP)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, max(deadline - time.monotonic(), 0.1))

    def _dispatch(self) -> None:
        """Hand the next batch to the model thread (event loop only)."""
        if self._scheduled is not None:
            self._scheduled.cancel()  # harmless if it is the call running now
            self._scheduled = None
        if self._model_busy:
            return
        job = self._take_batch()
        if job is not None:
            self._model_busy = True
            self._jobs.put(job)

    def _take_batch(self) -> tuple[Model, list[_Pending]] | None:
        """Pop the next model's queued requests up to the size limit (the first is taken even
        if larger); that model's queue then goes last, so loaded versions take turns."""
        while self._queues:
            model, waiting = next(iter(self._queues.items()))
            batch: list[_Pending] = []
            texts = 0
            items = waiting.items
            while items:
                item = items[0]
                if item.future.done():  # the client went away: don't score for nobody
                    items.popleft()
                    waiting.texts -= len(item.texts)
                    self._depth -= 1
                    continue
                if batch and texts + len(item.texts) > self._max_batch_size:
                    break
                items.popleft()
                batch.append(item)
                texts += len(item.texts)
            waiting.texts -= texts
            self._depth -= len(batch)
            del self._queues[model]
            if items:
                self._queues[model] = waiting
            if batch:
                return model, batch
        return None

    def _work(self) -> None:
        """The model thread: score each batch it is handed, report back once per batch."""
        loop = self._loop
        assert loop is not None
        run_without_wakeup_preemption()
        while (job := self._jobs.get()) is not _STOP:
            model, batch = job
            texts = [text for item in batch for text in item.texts]
            started = time.perf_counter()
            probabilities: list[float] = []
            logits: list[float] = []
            failure: ServiceError | None = None
            protocols = _BATCH_PROTOCOLS.set(_protocol_runs(batch))
            try:
                scores = self._score(model, texts)
                probabilities = scores[:, 0].tolist()
                logits = scores[:, 1].tolist()
            except Exception as exc:
                # The type only: an exception message may quote the input.
                logger.error(
                    "model call failed for a batch of %d texts: %s", len(texts), type(exc).__name__
                )
                failure = exc if isinstance(exc, ServiceError) else InferenceError()
            finally:
                _BATCH_PROTOCOLS.reset(protocols)
            if self._on_batch is not None:
                self._on_batch(len(texts), time.perf_counter() - started)
            try:
                loop.call_soon_threadsafe(self._finish, batch, probabilities, logits, failure)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return
            # Let go of the model while waiting for the next job: a version that left the
            # policy is unloaded once nothing holds it.
            del job, model, batch

    def _finish(
        self,
        batch: list[_Pending],
        probabilities: list[float],
        logits: list[float],
        failure: ServiceError | None,
    ) -> None:
        """Resolve a batch's futures and start the next batch (event loop only)."""
        self._model_busy = False
        if self._queues and self._scheduled is None:
            loop = self._loop
            upcoming = next(iter(self._queues.values()))
            if upcoming.texts < self._max_batch_size and self._gather_seconds > 0 and loop:
                # Under load: let the next batch fill (submit starts it early once it is full).
                self._scheduled = loop.call_later(self._gather_seconds, self._dispatch)
            else:
                self._dispatch()
        offset = 0
        for item in batch:
            count = len(item.texts)
            if not item.future.done():
                if failure is not None or len(probabilities) < offset + count:
                    error = failure or InferenceError()
                    item.future.set_exception(type(error)(error.message))
                else:
                    end = offset + count
                    item.future.set_result(
                        ScoredTexts(probabilities[offset:end], logits[offset:end])
                    )
            offset += count


def _protocol_runs(batch: Sequence[_Pending]) -> tuple[tuple[str, int], ...]:
    """The batch's texts as consecutive (protocol, count) runs, in order."""
    runs: list[tuple[str, int]] = []
    for item in batch:
        if runs and runs[-1][0] == item.protocol:
            runs[-1] = (item.protocol, runs[-1][1] + len(item.texts))
        else:
            runs.append((item.protocol, len(item.texts)))
    return tuple(runs)


def run_without_wakeup_preemption() -> None:
    """Make the calling thread ``SCHED_BATCH``: its wake-ups never preempt a running thread.

    The event loop wakes the model thread once per batch (``SimpleQueue.put``), holding the
    GIL. A normal thread that slept is favoured on wake-up and ran at once on the loop's core,
    only to block on the GIL the descheduled loop held, so the event loop lost time for one put
    per batch. ``SCHED_BATCH`` keeps the thread's fair share of CPU and only drops the wake-up
    preference, which raised throughput under load. Elsewhere (no ``SCHED_BATCH``, or not
    allowed) the thread keeps its policy.
    """
    set_scheduler = getattr(os, "sched_setscheduler", None)
    policy = getattr(os, "SCHED_BATCH", None)
    if set_scheduler is None or policy is None:
        return
    try:
        set_scheduler(0, policy, os.sched_param(0))  # 0: the calling thread, on Linux
    except OSError:
        logger.debug("SCHED_BATCH refused; the model thread keeps its scheduling policy")
