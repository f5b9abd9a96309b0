"""Measuring one server under load: rounds, alternation and what each round cost the server.

Machines are noisy, so servers compared with each other take turns (A B A B rather than
A A B B) and each figure pools its rounds; the server's CPU comes from /proc beside every
round so "the client was not the bottleneck" can be checked rather than assumed.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import orjson

from bench.loadclient import LoadResult, LoadSpec, run_load
from bench.options import Options
from bench.servers import HOST, Server, cpu_seconds, main_thread_cpu_seconds, post_json
from bench.texts import load_review_texts
from bench.wrk import run_wrk

logger = logging.getLogger("bench")

# Two warm-up rounds in a row within this share of each other: the rate is steady.
STEADY_TOLERANCE = 0.2


@dataclass(frozen=True)
class Slice:
    """One load round: the client's result and the server's CPU and wall seconds."""

    load: LoadResult
    server_cpu_s: float
    loop_thread_cpu_s: float
    wall_s: float


@dataclass(frozen=True)
class Measured:
    """One server's load phase (all rounds pooled) plus its CPU use during it.

    Requests/s is the median of the rounds' rates: the machine is shared, and a burst of
    someone else's work during one round should not decide the figure.
    """

    load: LoadResult
    round_rates: list[float]
    round_p50_ms: list[float]
    round_p99_ms: list[float]
    server_cpu_s: float
    loop_thread_cpu_s: float
    wall_s: float

    @property
    def requests_per_s(self) -> float:
        return statistics.median(self.round_rates) if self.round_rates else 0.0

    @property
    def p50_ms(self) -> float:
        """Median over rounds of each round's p50 (wrk reports percentiles, not latencies)."""
        return statistics.median(self.round_p50_ms) if self.round_p50_ms else float("nan")

    @property
    def p99_ms(self) -> float:
        """Median over rounds of each round's p99."""
        return statistics.median(self.round_p99_ms) if self.round_p99_ms else float("nan")

    @property
    def server_cpu_cores(self) -> float:
        return self.server_cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def server_cpu_ms_per_request(self) -> float:
        """Server CPU per answered request: unlike req/s, barely moved by a busy machine."""
        return 1000.0 * self.server_cpu_s / self.load.completed if self.load.completed else 0.0

    @property
    def loop_thread_cpu_ms_per_request(self) -> float:
        """Event-loop thread CPU per answered request: what caps a single worker's req/s."""
        if not self.load.completed:
            return 0.0
        return 1000.0 * self.loop_thread_cpu_s / self.load.completed


class Bench:
    """Drives servers in rounds with wrk, or else the Python client in its own process."""

    def __init__(self, options: Options, client_pool: ProcessPoolExecutor, wrk: str | None) -> None:
        self.options = options
        self.client_pool = client_pool
        self.wrk = wrk
        texts = load_review_texts(options.data, options.texts)
        self.texts = texts
        self.single_bodies = [orjson.dumps({"text": text}) for text in texts]
        self.batch_bodies = [
            orjson.dumps(
                {"texts": [texts[(start + i) % len(texts)] for i in range(options.batch_size)]}
            )
            for start in range(0, len(texts), max(1, len(texts) // 8))
        ]

    def warm_up(self, server: Server, path: str, bodies: Sequence[bytes], concurrency: int) -> None:
        if self.options.warmup_s > 0:
            spec = LoadSpec(
                HOST, server.port, path, bodies, concurrency, 10**9, self.options.warmup_s
            )
            self.load(spec)

    def warm_up_until_steady(
        self,
        server: Server,
        path: str,
        bodies: Sequence[bytes],
        concurrency: int,
        round_s: float = 1.0,
        max_rounds: int = 20,
    ) -> list[float]:
        """Warm-up rounds until two in a row agree within STEADY_TOLERANCE (at most
        `max_rounds`); the rates.

        Some servers take many seconds to reach their steady rate under concurrency, and not
        smoothly (a thread pool that grows one thread at a time, each thread's first TensorFlow
        call: 79 then 15 req/s before hundreds). A fixed short warm-up would measure their
        ramp, not them.
        """
        rates: list[float] = []
        for _ in range(max(1, max_rounds)):
            spec = LoadSpec(HOST, server.port, path, bodies, concurrency, 10**9, round_s)
            rates.append(self.load(spec).requests_per_s)
            if len(rates) >= 2 and steady(rates[-2], rates[-1]):
                break
        logger.info(
            "%s %s c=%d warm-up rates: %s req/s",
            server.name,
            path,
            concurrency,
            ", ".join(f"{rate:.0f}" for rate in rates),
        )
        return rates

    def load(self, spec: LoadSpec, count_statuses: bool = False) -> LoadResult:
        """One bounded load run with the chosen client."""
        if self.wrk is not None:
            return run_wrk(
                spec, self.wrk, threads=self.options.wrk_threads, count_statuses=count_statuses
            )
        return self.client_pool.submit(run_load, spec).result()

    def one_round(
        self,
        server: Server,
        path: str,
        bodies: Sequence[bytes],
        concurrency: int,
        duration_s: float,
        count_statuses: bool = False,
    ) -> Slice:
        """One bounded load slice (client in its own process) and the server's CPU cores.

        ``count_statuses``: tell every status apart (wrk then runs a Lua hook per answer);
        otherwise a wrk run only tells 2xx/3xx from the rest.
        """
        spec = LoadSpec(
            HOST, server.port, path, bodies, concurrency, self.options.max_requests, duration_s
        )
        cpu_before = cpu_seconds(server.pid)
        loop_before = main_thread_cpu_seconds(server.pid)
        wall_before = time.perf_counter()
        load = self.load(spec, count_statuses)
        wall = time.perf_counter() - wall_before
        server_cpu = cpu_seconds(server.pid) - cpu_before
        loop_cpu = main_thread_cpu_seconds(server.pid) - loop_before
        cores = server_cpu / wall if wall > 0 else 0.0
        logger.info(
            "%s %s c=%d: %.0f req/s p50 %.2f ms p99 %.2f ms %s timeouts=%d errors=%d "
            "server %.2f cores, client %.2f cores",
            server.name,
            path,
            concurrency,
            load.requests_per_s,
            load.p50_ms,
            load.p99_ms,
            load.status_counts,
            load.timeouts,
            load.errors,
            cores,
            load.client_cpu_share,
        )
        return Slice(load, server_cpu, loop_cpu, wall)

    def compare(
        self, servers: Sequence[Server], path: str, bodies: Sequence[bytes], concurrency: int
    ) -> list[Measured]:
        """Warm every server, then alternate short rounds between them (one path for all)."""
        return self.compare_endpoints([(server, path) for server in servers], bodies, concurrency)

    def compare_endpoints(
        self,
        endpoints: Sequence[tuple[Server, str]],
        bodies: Sequence[bytes],
        concurrency: int,
        warm_until_steady: bool = False,
    ) -> list[Measured]:
        """Warm every (server, path), then alternate short rounds between them.

        Alternating (A B A B A B rather than A A A B B B) exposes every server to the same
        background load, so their ratios stay meaningful on a busy machine. Each server has its
        own path (the peers answer the same body elsewhere). `warm_until_steady`: warm each
        until its rate is steady rather than for the fixed warm-up (the peers).
        """
        for server, path in endpoints:
            if warm_until_steady:
                self.warm_up_until_steady(
                    server,
                    path,
                    bodies,
                    concurrency,
                    max_rounds=max(1, round(self.options.peer_warmup_max_s)),
                )
            else:
                self.warm_up(server, path, bodies, concurrency)
        rounds = self.options.rounds
        slices: list[list[Slice]] = [[] for _ in endpoints]
        for _ in range(rounds):
            for index, (server, path) in enumerate(endpoints):
                slices[index].append(
                    self.one_round(
                        server, path, bodies, concurrency, self.options.duration_s / rounds
                    )
                )
        return [pool(server_slices) for server_slices in slices]

    def service_env(self, **overrides: str) -> dict[str, str]:
        env = {
            "SENTIMENT_MODEL_BASE_PATH": str(self.options.model_base),
            "SENTIMENT_LOG_LEVEL": "warning",
            "SENTIMENT_ACCESS_LOG": "false",
        }
        env.update(self.options.service_env)
        env.update(overrides)
        return env

    def smoke_check(self, server: Server, path: str, body: bytes) -> None:
        """One request before measuring: a benchmark of error answers would be meaningless."""
        status, answer = post_json(server.port, path, body)
        if status != 200:
            raise RuntimeError(f"{server.name} {path} answered {status}: {answer[:200]!r}")


def steady(previous: float, last: float) -> bool:
    """Two warm-up rates that agree within STEADY_TOLERANCE (and answered something)."""
    return last > 0 and abs(last - previous) <= STEADY_TOLERANCE * max(last, previous)


def pool(slices: Sequence[Slice]) -> Measured:
    """Rounds of one server as one tally: counts and latencies pooled, rates kept per round."""
    statuses: dict[int, int] = {}
    for load in (piece.load for piece in slices):
        for status, count in load.status_counts.items():
            statuses[status] = statuses.get(status, 0) + count
    loads = [piece.load for piece in slices]
    pooled = LoadResult(
        concurrency=loads[0].concurrency,
        completed=sum(load.completed for load in loads),
        elapsed_s=sum(load.elapsed_s for load in loads),
        latencies_s=[latency for load in loads for latency in load.latencies_s],
        status_counts=dict(sorted(statuses.items())),
        timeouts=sum(load.timeouts for load in loads),
        errors=sum(load.errors for load in loads),
        client_cpu_s=sum(load.client_cpu_s for load in loads),
    )
    return Measured(
        load=pooled,
        round_rates=[load.requests_per_s for load in loads],
        round_p50_ms=[load.p50_ms for load in loads],
        round_p99_ms=[load.p99_ms for load in loads],
        server_cpu_s=sum(piece.server_cpu_s for piece in slices),
        loop_thread_cpu_s=sum(piece.loop_thread_cpu_s for piece in slices),
        wall_s=sum(piece.wall_s for piece in slices),
    )
