"""Dynamic micro-batching: concurrent requests share one model call.

A model call costs about the same for one text as for dozens, so the service's throughput
comes from gathering concurrent requests. The scheme is greedy: one dedicated thread runs
the model (TensorFlow releases the GIL, so the event loop keeps serving HTTP meanwhile);
while a call runs, new requests queue up, and when it ends the thread takes everything
queued, up to ``max_batch_size`` texts, as the next batch. An idle service therefore adds no
wait at all; ``max_wait_seconds`` optionally trades latency for fuller batches.

The queue is bounded: when it is full a request is refused at once (429) instead of piling
up latency and memory. Results travel back with one ``call_soon_threadsafe`` per batch, and
a failing model call fails exactly the requests of its batch.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from app.errors import InferenceError, NotReadyError, OverloadedError, ServiceError

logger = logging.getLogger(__name__)

Tag = TypeVar("Tag")
"""Whatever the scoring function reports with its results (here: the model that scored)."""

ScoreFunction = Callable[[list[str]], tuple[npt.NDArray[np.float32], Tag]]
BatchObserver = Callable[[int, float], None]


@dataclass(slots=True)
class ScoredTexts(Generic[Tag]):
    """The probabilities for one request's texts, in order, and the scorer's tag."""

    probabilities: list[float]
    tag: Tag


@dataclass(slots=True)
class _Pending(Generic[Tag]):
    texts: Sequence[str]
    future: asyncio.Future[ScoredTexts[Tag]]


class MicroBatcher(Generic[Tag]):
    """Gathers concurrent ``submit`` calls into single calls of ``score`` on one thread."""

    def __init__(
        self,
        score: ScoreFunction[Tag],
        *,
        max_batch_size: int,
        max_wait_seconds: float = 0.0,
        queue_size: int,
        on_batch: BatchObserver | None = None,
        name: str = "model-batcher",
    ) -> None:
        self._score = score
        self._max_batch_size = max_batch_size
        self._max_wait_seconds = max_wait_seconds
        self._queue_size = queue_size
        self._on_batch = on_batch
        self._name = name
        self._pending: collections.deque[_Pending[Tag]] = collections.deque()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting = False
        self._stopping = False
        self._batches_in_flight = 0

    @property
    def depth(self) -> int:
        """Requests waiting for the model (not counting the batch being scored)."""
        return len(self._pending)

    def start(self) -> None:
        """Start the model thread; call from the event loop that will await results."""
        self._loop = asyncio.get_running_loop()
        self._accepting = True
        self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
        self._thread.start()

    async def submit(self, texts: Sequence[str]) -> ScoredTexts[Tag]:
        """Score ``texts`` in the next batch; OverloadedError at once if the queue is full."""
        if not self._accepting or self._loop is None:
            raise NotReadyError("The service is not accepting predictions.")
        future: asyncio.Future[ScoredTexts[Tag]] = self._loop.create_future()
        with self._condition:
            if len(self._pending) >= self._queue_size:
                raise OverloadedError()
            self._pending.append(_Pending(texts, future))
            self._condition.notify()
        return await future

    async def drain(self, timeout_seconds: float) -> None:
        """Stop accepting, let queued requests finish (bounded), then stop the thread."""
        self._accepting = False
        deadline = time.monotonic() + timeout_seconds
        while (self._pending or self._batches_in_flight) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        with self._condition:
            self._stopping = True
            abandoned = list(self._pending)
            self._pending.clear()
            self._condition.notify_all()
        for item in abandoned:
            if not item.future.done():
                item.future.set_exception(NotReadyError("The service is shutting down."))
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, max(deadline - time.monotonic(), 0.1))

    def _take_batch(self) -> list[_Pending[Tag]]:
        """Pop queued requests up to the size limit; the first is taken even if larger."""
        batch: list[_Pending[Tag]] = []
        texts = 0
        pending = self._pending
        while pending:
            item = pending[0]
            if item.future.cancelled():  # the client went away: don't score for nobody
                pending.popleft()
                continue
            if batch and texts + len(item.texts) > self._max_batch_size:
                break
            pending.popleft()
            batch.append(item)
            texts += len(item.texts)
        return batch

    def _next_batch(self) -> list[_Pending[Tag]] | None:
        with self._condition:
            while True:
                while not self._pending and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return None
                batch = self._take_batch()
                if batch:
                    break
            if self._max_wait_seconds > 0:
                deadline = time.monotonic() + self._max_wait_seconds
                while sum(len(item.texts) for item in batch) < self._max_batch_size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._stopping:
                        break
                    self._condition.wait(remaining)
                    batch.extend(self._take_more(batch))
            self._batches_in_flight += 1
            return batch

    def _take_more(self, batch: list[_Pending[Tag]]) -> list[_Pending[Tag]]:
        room = self._max_batch_size - sum(len(item.texts) for item in batch)
        more: list[_Pending[Tag]] = []
        while self._pending and len(self._pending[0].texts) <= room:
            item = self._pending.popleft()
            if not item.future.cancelled():
                more.append(item)
                room -= len(item.texts)
        return more

    def _work(self) -> None:
        loop = self._loop
        assert loop is not None
        while (batch := self._next_batch()) is not None:
            texts = [text for item in batch for text in item.texts]
            started = time.perf_counter()
            values: list[float] = []
            tag: Tag | None = None
            failure: ServiceError | None = None
            try:
                probabilities, tag = self._score(texts)
                values = probabilities.tolist()
            except Exception as exc:
                # The type only: an exception message may quote the input.
                logger.error(
                    "model call failed for a batch of %d texts: %s", len(texts), type(exc).__name__
                )
                failure = exc if isinstance(exc, ServiceError) else InferenceError()
            if self._on_batch is not None:
                self._on_batch(len(texts), time.perf_counter() - started)
            try:
                loop.call_soon_threadsafe(self._resolve, batch, values, tag, failure)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    def _resolve(
        self,
        batch: list[_Pending[Tag]],
        values: list[float],
        tag: Tag | None,
        failure: ServiceError | None,
    ) -> None:
        with self._condition:
            self._batches_in_flight -= 1
        offset = 0
        for item in batch:
            count = len(item.texts)
            if not item.future.done():
                if failure is not None or tag is None:
                    error = failure or InferenceError()
                    item.future.set_exception(type(error)(error.message))
                else:
                    item.future.set_result(ScoredTexts(values[offset : offset + count], tag))
            offset += count
