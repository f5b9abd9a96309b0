"""The benchmark's phases: the service against its ceiling, batches against the model alone,
and overload. Each server runs exactly as it ships (bench.servers)."""

from __future__ import annotations

import functools
import logging
import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import REPO_ROOT
from bench.inprocess import (
    InProcessResult,
    configure_threads,
    load_serving_function,
    measure_serving_throughput,
    newest_version_dir,
)
from bench.measure import Bench, Measured, Slice, pool
from bench.options import Options, service_settings
from bench.servers import CEILING, SERVICE, rss_mib, running_server
from bench.wrk import find_wrk

logger = logging.getLogger("bench")

PREDICT_PATH = "/v1/predict"
BATCH_PATH = "/v1/predict/batch"
# The micro-batcher's default batch size under load: the model's cost per text at this size
# is what a single-text request costs the model at best.
MODEL_COST_BATCH_SIZE = 64


@dataclass(frozen=True)
class Results:
    single: dict[int, tuple[Measured, Measured]]  # concurrency -> (service, ceiling)
    batch: dict[int, Measured]
    inprocess: InProcessResult  # batch size options.batch_size, alternating with batch rounds
    model_cost: InProcessResult  # batch size MODEL_COST_BATCH_SIZE: CPU per text
    signature: str
    version: str
    workers: int
    client: str
    overload: Measured
    overload_rss_mib: tuple[float, float, float]
    text_count: int
    median_chars: int
    load_average: str


def choose_client(options: Options) -> str | None:
    """The wrk executable, or None for the Python client (with a warning when wrk is missing)."""
    if options.client == "python":
        return None
    wrk = find_wrk()
    if wrk is None:
        if options.client == "wrk":
            raise RuntimeError("--client wrk, but wrk is not installed (apt-get install wrk)")
        logger.warning(
            "wrk is not installed (apt-get install wrk): falling back to the Python load "
            "client, which takes a larger share of the cores and lowers every figure"
        )
    return wrk


def run_benchmark(options: Options) -> Results:
    context = multiprocessing.get_context("spawn")
    version_dir = newest_version_dir(options.model_base)
    settings = service_settings(options)
    wrk = choose_client(options)
    workers = settings.workers
    with (
        ProcessPoolExecutor(max_workers=1, mp_context=context) as client_pool,
        ProcessPoolExecutor(
            max_workers=1,
            mp_context=context,
            initializer=functools.partial(
                configure_threads, settings.tf_intra_op_threads, settings.tf_inter_op_threads
            ),
        ) as tf_pool,
    ):
        bench = Bench(options, client_pool, wrk)
        logger.info("loading the SavedModel in a separate process for the in-process yardstick")
        signature = tf_pool.submit(load_serving_function, version_dir).result()
        # The model's own cost per text at the micro-batcher's batch size, before any server
        # runs (nothing else competes for the cores).
        model_cost = tf_pool.submit(
            measure_serving_throughput,
            version_dir,
            bench.texts,
            MODEL_COST_BATCH_SIZE,
            runs=5,
            run_seconds=0.5,
        ).result()
        logger.info(
            "in process, %s at batch %d: %.4f ms CPU per text",
            signature,
            MODEL_COST_BATCH_SIZE,
            model_cost.median_cpu_ms_per_text,
        )
        single: dict[int, tuple[Measured, Measured]] = {}
        batch: dict[int, Measured] = {}
        inprocess_rates: list[float] = []
        inprocess_cpu: list[float] = []
        ceiling_env = {"SENTIMENT_WORKERS": str(workers), "SENTIMENT_LOG_LEVEL": "warning"}
        with (
            running_server(
                "ceiling", CEILING, ceiling_env, REPO_ROOT, "/readyz", listeners=workers
            ) as ceiling,
            running_server(
                "service", SERVICE, bench.service_env(), REPO_ROOT, "/readyz", listeners=workers
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
            "service-small-queue", SERVICE, overload_env, REPO_ROOT, "/readyz", listeners=workers
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
                        count_statuses=True,
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
        model_cost=model_cost,
        signature=signature,
        version=version_dir.name,
        workers=workers,
        client="wrk" if wrk else "python",
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
