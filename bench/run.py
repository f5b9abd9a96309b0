"""The benchmark's phases: the service against its ceiling, batches against the model alone,
and overload. Each server runs exactly as it ships (bench.servers)."""

from __future__ import annotations

import logging
import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import REPO_ROOT
from bench.inprocess import (
    InProcessResult,
    load_serving_function,
    measure_serving_throughput,
    newest_version_dir,
)
from bench.measure import Bench, Measured, Slice, pool
from bench.options import Options
from bench.servers import SERVICE, rss_mib, running_server

logger = logging.getLogger("bench")

CEILING_FACTORY = "bench.ceiling:create_app"
PREDICT_PATH = "/v1/predict"
BATCH_PATH = "/v1/predict/batch"


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
            batch = {concurrency: pool(slices) for concurrency, slices in batch_slices.items()}

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
        overload=pool(bursts),
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
