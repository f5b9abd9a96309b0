"""`python -m bench`: the service against its HTTP ceiling, side by side, in one run.

Machines are noisy, so every target is a ratio of two figures measured in the same run on the
same machine with the same client and texts:

1. single-text `POST /v1/predict` at concurrency 1, 16 and 64 against the real service and
   against `bench.ceiling` (same framework and validation, constant answer);
2. `POST /v1/predict/batch` with 256 texts beside the SavedModel's own serving function on
   batches of 256, in process;
3. overload: concurrency 512 against a service with a small queue, which must answer only 200
   or 429, never time out, and keep its memory flat.

The load client runs in its own process (it must not share a GIL with anything) and reports its
CPU time so that "the client was not the bottleneck" can be checked rather than assumed.
The results are written to stdout as Markdown tables ready for the README; progress goes to
the log on stderr.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson

from app.settings import Settings
from bench.inprocess import (
    InProcessResult,
    load_serving_function,
    measure_serving_throughput,
    newest_version_dir,
)
from bench.loadclient import LoadResult, LoadSpec, run_load
from bench.servers import (
    HOST,
    SERVICE,
    Server,
    cpu_seconds,
    main_thread_cpu_seconds,
    post_json,
    rss_mib,
    running_server,
)
from bench.texts import DEFAULT_DATA, load_review_texts

logger = logging.getLogger("bench")

REPO_ROOT = Path(__file__).resolve().parent.parent
FALLBACK_MODEL_BASE = Path("/tmp/team/model/sentiment")
CEILING_FACTORY = "bench.ceiling:create_app"
PREDICT_PATH = "/v1/predict"
BATCH_PATH = "/v1/predict/batch"

# Targets from issue 4; printed beside the figures with PASS/MISS.
TARGET_C64_RATIO = 0.7
TARGET_C1_P50_DELTA_MS = 1.5
TARGET_BATCH_RATIO = 0.7
TARGET_RSS_GROWTH = 0.10


@dataclass(frozen=True)
class Options:
    data: Path
    model_base: Path
    texts: int
    concurrency: list[int]
    duration_s: float
    warmup_s: float
    max_requests: int
    batch_size: int
    batch_concurrency: list[int]
    overload_concurrency: int
    overload_queue_size: int
    overload_duration_s: float
    inprocess_runs: int
    rounds: int
    service_env: dict[str, str]
    strict: bool

    @property
    def service_workers(self) -> int:
        """Worker processes of the service under test, for the report."""
        default = Settings.model_fields["workers"].default
        return int(self.service_env.get("SENTIMENT_WORKERS", default))


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
    server_cpu_s: float
    loop_thread_cpu_s: float
    wall_s: float

    @property
    def requests_per_s(self) -> float:
        return statistics.median(self.round_rates) if self.round_rates else 0.0

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


def _default_model_base() -> Path:
    shipped = REPO_ROOT / "model" / "sentiment"
    if shipped.is_dir() and any(entry.name.isdigit() for entry in shipped.iterdir()):
        return shipped
    return FALLBACK_MODEL_BASE


def _int_list(value: str) -> list[int]:
    return [int(part) for part in value.split(",") if part.strip()]


def _key_values(pairs: Sequence[str]) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.startswith("SENTIMENT_"):
            raise SystemExit(f"--service-env wants SENTIMENT_NAME=VALUE, got {pair!r}")
        parsed[key] = value
    return parsed


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the sentiment service against its HTTP ceiling (see module doc).",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO_ROOT / DEFAULT_DATA,
        help="IMDB archive (.tar.gz, aclImdb layout) to take real review texts from",
    )
    parser.add_argument(
        "--model-base",
        type=Path,
        default=None,
        help="model base directory with integer versions (default: model/sentiment if present)",
    )
    parser.add_argument("--texts", type=int, default=400, help="how many review texts to use")
    parser.add_argument("--concurrency", type=_int_list, default=[1, 16, 64])
    parser.add_argument(
        "--duration", type=float, default=4.5, help="measured seconds per server and phase"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per phase")
    parser.add_argument("--max-requests", type=int, default=60_000, help="requests per phase")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batch-concurrency", type=_int_list, default=[1, 4])
    parser.add_argument("--overload-concurrency", type=int, default=512)
    parser.add_argument("--overload-queue-size", type=int, default=64)
    parser.add_argument("--overload-duration", type=float, default=4.0)
    parser.add_argument("--inprocess-runs", type=int, default=9)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds each phase's duration is split into (robust to a busy machine)",
    )
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="SENTIMENT_X=VALUE",
        help="extra setting for the service under test (repeatable), e.g. SENTIMENT_WORKERS=2",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    return Options(
        data=args.data,
        model_base=(args.model_base or _default_model_base()).resolve(),
        texts=args.texts,
        concurrency=args.concurrency,
        duration_s=args.duration,
        warmup_s=args.warmup,
        max_requests=args.max_requests,
        batch_size=args.batch_size,
        batch_concurrency=args.batch_concurrency,
        overload_concurrency=args.overload_concurrency,
        overload_queue_size=args.overload_queue_size,
        overload_duration_s=args.overload_duration,
        inprocess_runs=args.inprocess_runs,
        rounds=max(1, args.rounds),
        service_env=_key_values(args.service_env),
        strict=args.strict,
    )


class Bench:
    """Runs the phases; the load client lives in a separate process for the whole run."""

    def __init__(self, options: Options, client_pool: ProcessPoolExecutor) -> None:
        self.options = options
        self.client_pool = client_pool
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
            self.client_pool.submit(run_load, spec).result()

    def one_round(
        self,
        server: Server,
        path: str,
        bodies: Sequence[bytes],
        concurrency: int,
        duration_s: float,
    ) -> Slice:
        """One bounded load slice (client in its own process) and the server's CPU cores."""
        spec = LoadSpec(
            HOST, server.port, path, bodies, concurrency, self.options.max_requests, duration_s
        )
        cpu_before = cpu_seconds(server.pid)
        loop_before = main_thread_cpu_seconds(server.pid)
        wall_before = time.perf_counter()
        load = self.client_pool.submit(run_load, spec).result()
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
        """Warm every server, then alternate short rounds between them.

        Alternating (A B A B A B rather than A A A B B B) exposes both servers to the same
        background load, so their ratio stays meaningful on a busy machine.
        """
        for server in servers:
            self.warm_up(server, path, bodies, concurrency)
        rounds = self.options.rounds
        slices: list[list[Slice]] = [[] for _ in servers]
        for _ in range(rounds):
            for index, server in enumerate(servers):
                slices[index].append(
                    self.one_round(
                        server, path, bodies, concurrency, self.options.duration_s / rounds
                    )
                )
        return [_pool(server_slices) for server_slices in slices]

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


@dataclass(frozen=True)
class Results:
    single: dict[int, tuple[Measured, Measured]]  # concurrency -> (service, ceiling)
    batch: dict[int, Measured]
    inprocess: InProcessResult
    overload: Measured
    overload_rss_mib: tuple[float, float, float]
    text_count: int
    median_chars: int
    load_average: str


def run_benchmark(options: Options) -> Results:
    context = multiprocessing.get_context("spawn")
    version_dir = newest_version_dir(options.model_base)
    with (
        ProcessPoolExecutor(max_workers=1, mp_context=context) as client_pool,
        ProcessPoolExecutor(max_workers=1, mp_context=context) as tf_pool,
    ):
        bench = Bench(options, client_pool)
        logger.info("loading the SavedModel in a separate process for the in-process yardstick")
        tf_pool.submit(load_serving_function, version_dir).result()
        single: dict[int, tuple[Measured, Measured]] = {}
        batch: dict[int, Measured] = {}
        inprocess_rates: list[float] = []
        inprocess_cpu: list[float] = []
        with (
            running_server("ceiling", CEILING_FACTORY, {}, REPO_ROOT, "/readyz") as ceiling,
            running_server(
                "service", SERVICE, bench.service_env(), REPO_ROOT, "/readyz"
            ) as service,
        ):
            bench.smoke_check(ceiling, PREDICT_PATH, bench.single_bodies[0])
            bench.smoke_check(service, PREDICT_PATH, bench.single_bodies[0])
            bench.smoke_check(service, BATCH_PATH, bench.batch_bodies[0])
            for concurrency in options.concurrency:
                measured_service, measured_ceiling = bench.compare(
                    [service, ceiling], PREDICT_PATH, bench.single_bodies, concurrency
                )
                single[concurrency] = (measured_service, measured_ceiling)
            # The batch endpoint alternates with the in-process serving function, for the same
            # reason the service alternates with the ceiling.
            for concurrency in options.batch_concurrency:
                bench.warm_up(service, BATCH_PATH, bench.batch_bodies, concurrency)
            batch_slices: dict[int, list[Slice]] = {
                concurrency: [] for concurrency in options.batch_concurrency
            }
            inprocess_runs_per_round = max(1, options.inprocess_runs // options.rounds)
            for _ in range(options.rounds):
                inprocess_round = tf_pool.submit(
                    measure_serving_throughput,
                    version_dir,
                    bench.texts,
                    options.batch_size,
                    runs=inprocess_runs_per_round,
                    run_seconds=options.duration_s / options.rounds / inprocess_runs_per_round,
                ).result()
                inprocess_rates.extend(inprocess_round.texts_per_s_runs)
                inprocess_cpu.extend(inprocess_round.cpu_ms_per_text_runs)
                for concurrency in options.batch_concurrency:
                    batch_slices[concurrency].append(
                        bench.one_round(
                            service,
                            BATCH_PATH,
                            bench.batch_bodies,
                            concurrency,
                            options.duration_s / options.rounds,
                        )
                    )
            batch = {concurrency: _pool(slices) for concurrency, slices in batch_slices.items()}

        overload_env = bench.service_env(SENTIMENT_QUEUE_SIZE=str(options.overload_queue_size))
        with running_server(
            "service-small-queue", SERVICE, overload_env, REPO_ROOT, "/readyz"
        ) as small:
            bench.warm_up(small, PREDICT_PATH, bench.single_bodies, 16)
            rss_before = rss_mib(small.pid)
            bursts = []
            rss_after: list[float] = []
            for _ in range(2):
                bursts.append(
                    bench.one_round(
                        small,
                        PREDICT_PATH,
                        bench.single_bodies,
                        options.overload_concurrency,
                        options.overload_duration_s,
                    )
                )
                rss_after.append(rss_mib(small.pid))
    return Results(
        single=single,
        batch=batch,
        inprocess=InProcessResult(
            batch_size=options.batch_size,
            texts_per_s_runs=inprocess_rates,
            cpu_ms_per_text_runs=inprocess_cpu,
        ),
        overload=_pool(bursts),
        overload_rss_mib=(rss_before, rss_after[0], rss_after[1]),
        text_count=len(bench.texts),
        median_chars=round(statistics.median(len(text) for text in bench.texts)),
        load_average=_load_average(),
    )


def _load_average() -> str:
    """The 1/5/15-minute load averages: a busy machine explains noisy figures."""
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _pool(slices: Sequence[Slice]) -> Measured:
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
        server_cpu_s=sum(piece.server_cpu_s for piece in slices),
        loop_thread_cpu_s=sum(piece.loop_thread_cpu_s for piece in slices),
        wall_s=sum(piece.wall_s for piece in slices),
    )


def _statuses(load: LoadResult) -> str:
    parts = [f"{status}: {count}" for status, count in load.status_counts.items()]
    return ", ".join(parts) or "none"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def render(options: Options, results: Results) -> tuple[str, bool]:
    """The report as Markdown, and whether every target was met."""
    lines: list[str] = []
    add = lines.append
    add("## Benchmark results")
    add("")
    add(
        f"Machine: {os.cpu_count()} cores ({platform.machine()}), Python "
        f"{platform.python_version()}; service: `python -m app` with "
        f"{options.service_workers} worker(s) (shared metrics when several); ceiling: uvicorn, "
        f"1 worker (both uvloop, httptools, no access log); service settings: "
        f"{_settings_text(options)}; load client: raw asyncio sockets in its own process; "
        f"{results.text_count} real IMDB test reviews (median {results.median_chars} "
        f"characters); per server and phase {options.warmup_s:g} s warm-up, then "
        f"{options.rounds} rounds of ≤ {options.duration_s / options.rounds:g} s (≤ "
        f"{options.max_requests} requests) alternating with the server compared against; "
        f"req/s is the median over rounds, p50/p99 over all requests of all rounds. Model "
        f"`{options.model_base}`. Load average at the end: {results.load_average}."
    )
    add("")
    add("### Single-text `POST /v1/predict`: service vs. ceiling (same framework, constant answer)")
    add("")
    add(
        "| concurrency | service req/s | p50 ms | p99 ms | ceiling req/s | p50 ms | p99 ms "
        "| service/ceiling | p50 delta ms | CPU ms/req service (loop thread) "
        "| ceiling (loop thread) | service CPU cores | client CPU cores | service answers |"
    )
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for concurrency, (service, ceiling) in results.single.items():
        ratio = service.load.requests_per_s / max(ceiling.load.requests_per_s, 1e-9)
        delta = service.load.p50_ms - ceiling.load.p50_ms
        add(
            f"| {concurrency} | {service.load.requests_per_s:,.0f} | {service.load.p50_ms:.2f} "
            f"| {service.load.p99_ms:.2f} | {ceiling.load.requests_per_s:,.0f} "
            f"| {ceiling.load.p50_ms:.2f} | {ceiling.load.p99_ms:.2f} | {ratio:.2f} "
            f"| {delta:+.2f} | {service.server_cpu_ms_per_request:.3f} "
            f"({service.loop_thread_cpu_ms_per_request:.3f}) "
            f"| {ceiling.server_cpu_ms_per_request:.3f} "
            f"({ceiling.loop_thread_cpu_ms_per_request:.3f}) | {service.server_cpu_cores:.2f} "
            f"| {service.load.client_cpu_share:.2f} | {_statuses(service.load)}"
            f"{_failures(service.load)} |"
        )
    add("")
    add(f"### `POST /v1/predict/batch` with {options.batch_size} texts vs. the serving function")
    add("")
    inprocess = results.inprocess
    add(
        f"In process, `serving_default` on batches of {inprocess.batch_size}: "
        f"**{inprocess.median_texts_per_s:,.0f} texts/s** (median of "
        f"{len(inprocess.texts_per_s_runs)} runs alternating with the HTTP rounds; TensorFlow's "
        f"default threads), {inprocess.median_cpu_ms_per_text:.4f} ms CPU per text."
    )
    add("")
    add(
        "| concurrency | requests/s | texts/s | p50 ms | p99 ms | HTTP/in-process "
        "| server CPU ms/text | service CPU cores | client CPU cores | answers |"
    )
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for concurrency, measured in results.batch.items():
        texts_per_s = measured.load.requests_per_s * options.batch_size
        add(
            f"| {concurrency} | {measured.load.requests_per_s:,.1f} | {texts_per_s:,.0f} "
            f"| {measured.load.p50_ms:.1f} | {measured.load.p99_ms:.1f} "
            f"| {texts_per_s / inprocess.median_texts_per_s:.2f} "
            f"| {measured.server_cpu_ms_per_request / options.batch_size:.4f} "
            f"| {measured.server_cpu_cores:.2f} | {measured.load.client_cpu_share:.2f} "
            f"| {_statuses(measured.load)}{_failures(measured.load)} |"
        )
    add("")
    overload = results.overload.load
    before, after_first, after_second = results.overload_rss_mib
    add(
        f"### Overload: concurrency {options.overload_concurrency}, "
        f"`SENTIMENT_QUEUE_SIZE={options.overload_queue_size}`, two bursts of "
        f"≤ {options.overload_duration_s:g} s"
    )
    add("")
    add(
        "| answered | answers | timeouts | connection errors | RSS before | after burst 1 "
        "| after burst 2 |"
    )
    add("|---:|---|---:|---:|---:|---:|---:|")
    add(
        f"| {overload.completed:,} | {_statuses(overload)} | {overload.timeouts} "
        f"| {overload.errors} | {before:.0f} MiB | {after_first:.0f} MiB | {after_second:.0f} MiB |"
    )
    add("")

    checks: list[tuple[str, str, bool]] = []
    top = max(results.single)
    service_top, ceiling_top = results.single[top]
    ratio_top = service_top.load.requests_per_s / max(ceiling_top.load.requests_per_s, 1e-9)
    checks.append(
        (
            f"c={top}: service req/s ≥ {TARGET_C64_RATIO} x ceiling",
            f"{ratio_top:.2f} x",
            ratio_top >= TARGET_C64_RATIO and _clean(service_top.load),
        )
    )
    low = min(results.single)
    service_low, ceiling_low = results.single[low]
    delta_low = service_low.load.p50_ms - ceiling_low.load.p50_ms
    checks.append(
        (
            f"c={low}: service p50 ≤ ceiling p50 + {TARGET_C1_P50_DELTA_MS} ms",
            f"{service_low.load.p50_ms:.2f} ms vs {ceiling_low.load.p50_ms:.2f} ms "
            f"({delta_low:+.2f} ms)",
            delta_low <= TARGET_C1_P50_DELTA_MS and _clean(service_low.load),
        )
    )
    best_batch = max(
        results.batch.items(), key=lambda item: item[1].load.requests_per_s, default=None
    )
    if best_batch is not None:
        batch_concurrency, batch_measured = best_batch
        batch_ratio = (
            batch_measured.load.requests_per_s * options.batch_size / inprocess.median_texts_per_s
        )
        checks.append(
            (
                f"batch {options.batch_size}: HTTP texts/s ≥ {TARGET_BATCH_RATIO} x in-process "
                f"(best concurrency: {batch_concurrency})",
                f"{batch_ratio:.2f} x",
                batch_ratio >= TARGET_BATCH_RATIO and _clean(batch_measured.load),
            )
        )
    only_200_429 = set(overload.status_counts) <= {200, 429}
    checks.append(
        (
            "overload: only 200 and 429, no timeouts",
            f"{_statuses(overload)}; timeouts {overload.timeouts}; errors {overload.errors}",
            only_200_429 and overload.timeouts == 0 and overload.errors == 0,
        )
    )
    growth = (after_second - before) / before if before > 0 else float("inf")
    checks.append(
        (
            f"overload: RSS flat (growth ≤ {TARGET_RSS_GROWTH:.0%})",
            f"{before:.0f} → {after_second:.0f} MiB ({growth:+.1%})",
            growth <= TARGET_RSS_GROWTH,
        )
    )
    add("### Targets")
    add("")
    add("| target | measured | result |")
    add("|---|---|---|")
    for name, measured_text, ok in checks:
        add(f"| {name} | {measured_text} | {_verdict(ok)} |")
    add("")
    return "\n".join(lines), all(ok for _, _, ok in checks)


def _settings_text(options: Options) -> str:
    settings = dict(options.service_env)
    return ", ".join(f"`{key}={value}`" for key, value in sorted(settings.items())) or "defaults"


def _clean(load: LoadResult) -> bool:
    """A throughput figure only counts if every request was answered 200."""
    return set(load.status_counts) <= {200} and load.timeouts == 0 and load.errors == 0


def _failures(load: LoadResult) -> str:
    if load.timeouts or load.errors:
        return f"; timeouts {load.timeouts}, errors {load.errors}"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = parse_options(argv)
    started = time.monotonic()
    try:
        results = run_benchmark(options)
    except (RuntimeError, OSError, ValueError) as exc:
        logger.error("benchmark failed: %s", exc)
        return 2
    report, all_met = render(options, results)
    sys.stdout.write(report + "\n")
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "-m", "bench", *arguments])
    sys.stdout.write(f"Command: `{command}` ({time.monotonic() - started:.0f} s in total)\n")
    sys.stdout.flush()
    return 1 if options.strict and not all_met else 0


if __name__ == "__main__":
    sys.exit(main())
