"""A gRPC load client that is not the bottleneck: pre-serialized calls from their own processes.

The REST side of the benchmark is driven by wrk (C) or bench.loadclient (raw sockets), both
sending bytes encoded once. This is the gRPC counterpart, built so that the client's own cost
stays small and visible:

* the requests are serialized once, before the run, and sent through a generic unary method
  with no serializers (bytes in, bytes out): no protobuf work per call on the client;
* grpc.aio, one coroutine per in-flight call, one channel (one HTTP/2 connection) per
  ``calls_per_channel`` calls; channels do not share a connection (gRPC pools subchannels per
  process by default), so with several server workers (SO_REUSEPORT) the connections spread
  over them as REST connections do;
* the load runs in ``processes`` spawned processes, never in the benchmark's own, and each
  child measures its CPU time (every thread, gRPC's included) over the timed window only, so
  the report can say how much of the machine the client took.

Every run is bounded by a request count and a deadline; a call that gets no answer within
``request_timeout_s`` counts as a timeout, and a child that outlives the run by a margin is
killed. Results come back as a bench.loadclient.LoadResult whose ``status_counts`` are keyed by
gRPC status code (0 is OK).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import queue
import resource
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.synchronize import Event

import grpc

from bench.loadclient import LoadResult

OK = grpc.StatusCode.OK.value[0]
_KILL_MARGIN_S = 30.0
_SPAWN_MARGIN_S = 30.0  # a spawned child imports grpc before it connects


@dataclass(frozen=True)
class GrpcLoadSpec:
    """What to call, where, how hard and for how long."""

    address: str  # host:port
    method: str  # full method name, e.g. /inference.GRPCInferenceService/ModelInfer
    payloads: Sequence[bytes]  # serialized requests, sent in turn
    concurrency: int
    max_requests: int
    duration_s: float
    request_timeout_s: float = 10.0
    calls_per_channel: int = 16
    processes: int = 1
    connect_timeout_s: float = 60.0  # spawning a child and connecting its channels

    def channels(self, concurrency: int) -> int:
        return max(1, math.ceil(concurrency / max(1, self.calls_per_channel)))


@dataclass(frozen=True)
class _Share:
    """One child's part of the run."""

    spec: GrpcLoadSpec
    concurrency: int
    max_requests: int
    first_payload: int


@dataclass(frozen=True)
class _ShareResult:
    latencies_s: list[float]
    status_counts: dict[int, int]
    timeouts: int
    errors: int
    elapsed_s: float
    cpu_s: float


def shares(spec: GrpcLoadSpec) -> list[_Share]:
    """Concurrency and request budget split as evenly as possible over the processes."""
    processes = max(1, min(spec.processes, spec.concurrency))
    result = []
    for index in range(processes):
        concurrency = spec.concurrency // processes + (index < spec.concurrency % processes)
        budget = spec.max_requests // processes + (index < spec.max_requests % processes)
        result.append(_Share(spec, concurrency, max(1, budget), index * 7))
    return result


def _cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _drive(share: _Share, ready: multiprocessing.Queue[object], go: Event) -> _ShareResult:
    spec = share.spec
    options = [("grpc.use_local_subchannel_pool", 1)]  # one connection per channel
    channels = [
        grpc.aio.insecure_channel(spec.address, options=options)
        for _ in range(spec.channels(share.concurrency))
    ]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), spec.connect_timeout_s)
        # No serializers: the payloads are bytes already and answers stay bytes.
        methods: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
            channel.unary_unary(spec.method) for channel in channels
        ]
        ready.put(None)
        await asyncio.get_running_loop().run_in_executor(None, go.wait, spec.connect_timeout_s)

        payloads = spec.payloads
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        counts = {"issued": 0, "timeouts": 0, "errors": 0}
        cpu_before = _cpu_now()
        started = time.perf_counter()
        deadline = started + spec.duration_s
        last_answer = started

        async def caller(slot: int) -> None:
            nonlocal last_answer
            call = methods[slot % len(methods)]
            index = share.first_payload + slot * 7
            while counts["issued"] < share.max_requests and time.perf_counter() < deadline:
                counts["issued"] += 1
                index += 1
                sent = time.perf_counter()
                try:
                    await call(payloads[index % len(payloads)], timeout=spec.request_timeout_s)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                        counts["timeouts"] += 1
                    else:
                        statuses[exc.code().value[0]] += 1
                        latencies.append(time.perf_counter() - sent)
                    continue
                except Exception:  # counted, the run goes on
                    counts["errors"] += 1
                    continue
                last_answer = time.perf_counter()
                latencies.append(last_answer - sent)
                statuses[OK] += 1

        await asyncio.gather(*(caller(slot) for slot in range(share.concurrency)))
        cpu = _cpu_now() - cpu_before
        return _ShareResult(
            latencies_s=latencies,
            status_counts=dict(sorted(statuses.items())),
            timeouts=counts["timeouts"],
            errors=counts["errors"],
            elapsed_s=max(last_answer - started, 1e-9),
            cpu_s=cpu,
        )
    finally:
        for channel in channels:
            await channel.close()


def _child(
    share: _Share,
    ready: multiprocessing.Queue[object],
    go: Event,
    out: multiprocessing.Queue[object],
) -> None:
    """A spawned process: connect, report ready, wait for the start, drive, send the result."""
    try:
        out.put(asyncio.run(_drive(share, ready, go)))
    except BaseException as exc:  # the parent reports it (as text: not every error pickles)
        ready.put(f"{exc!r}")
        out.put(f"gRPC load process failed: {exc!r}")


def merge(concurrency: int, results: Sequence[_ShareResult]) -> LoadResult:
    """The children's tallies as one LoadResult; the elapsed time is the longest child's."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    for result in results:
        statuses.update(result.status_counts)
        latencies.extend(result.latencies_s)
    return LoadResult(
        concurrency=concurrency,
        completed=len(latencies),
        elapsed_s=max(result.elapsed_s for result in results),
        latencies_s=latencies,
        status_counts=dict(sorted(statuses.items())),
        timeouts=sum(result.timeouts for result in results),
        errors=sum(result.errors for result in results),
        client_cpu_s=sum(result.cpu_s for result in results),
    )


def run_grpc_load(spec: GrpcLoadSpec) -> LoadResult:
    """Run `spec` from spawned processes that start together once all are connected."""
    if not spec.payloads:
        raise ValueError("at least one payload is needed")
    context = multiprocessing.get_context("spawn")
    ready: multiprocessing.Queue[object] = context.Queue()
    out: multiprocessing.Queue[object] = context.Queue()
    go = context.Event()
    parts = shares(spec)
    processes = [
        context.Process(target=_child, args=(share, ready, go, out), daemon=True) for share in parts
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            signal = ready.get(timeout=spec.connect_timeout_s + _SPAWN_MARGIN_S)
            if signal is not None:
                raise RuntimeError(f"gRPC load process failed to start: {signal}")
        go.set()
        limit = time.monotonic() + spec.duration_s + spec.request_timeout_s + _KILL_MARGIN_S
        results: list[_ShareResult] = []
        for _ in processes:
            try:
                item = out.get(timeout=max(1.0, limit - time.monotonic()))
            except queue.Empty as exc:
                raise RuntimeError("gRPC load process did not finish in time") from exc
            if not isinstance(item, _ShareResult):
                raise RuntimeError(str(item))
            results.append(item)
    finally:
        go.set()
        for process in processes:
            process.join(timeout=5.0)
            if process.is_alive():
                process.kill()
                process.join()
        with contextlib.suppress(Exception):
            ready.close()
            out.close()
    return merge(spec.concurrency, results)
