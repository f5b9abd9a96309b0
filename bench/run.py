"""The benchmark's phases: the service against its ceiling, batches against the model alone,
the peers (peer mode) and overload; before any server, the model's cost per text and the
default version's against an older one. Each server runs exactly as it ships (bench.servers)."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import logging
import multiprocessing
import statistics
import subprocess
import tempfile
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
from bench.peers import PEERS, Launch
from bench.servers import (
    BARE,
    CEILING,
    HOST,
    SERVICE,
    Server,
    post_json,
    rss_mib,
    running_command,
    running_server,
)
from bench.versions import compare
from bench.wrk import find_wrk

logger = logging.getLogger("bench")

PREDICT_PATH = "/v1/predict"
BATCH_PATH = "/v1/predict/batch"
# The micro-batcher's default batch size under load: the model's cost per text at this size
# is what a single-text request costs the model at best.
MODEL_COST_BATCH_SIZE = 64
# Peer mode (issue 27): throughput at c=64, latency at c=1.
PEER_CONCURRENCY = (64, 1)
# How closely a peer must answer our service's probability: the same model, or no comparison.
PEER_AGREEMENT = 1e-5
# The distributions whose versions the peer report states (in the peers' interpreter).
PEER_DISTRIBUTIONS = ("tensorflow-cpu", "fastapi", "uvicorn", "bentoml", "litserve")


@dataclass(frozen=True)
class VersionCosts:
    """In-process CPU per text of the default version and an older one, rounds alternating."""

    default: str
    older: str
    default_ms: list[float]  # one figure per round
    older_ms: list[float]

    @property
    def ratio(self) -> float:
        """Median of the per-round ratios (drift between rounds cancels); 1 for one version."""
        if self.default == self.older:
            return 1.0
        return statistics.median(
            new / old for new, old in zip(self.default_ms, self.older_ms, strict=True)
        )


@dataclass(frozen=True)
class PeerResults:
    """Peer mode: our service and each peer at PEER_CONCURRENCY, rounds alternating."""

    service: dict[int, Measured]  # our service's rounds in this phase, by concurrency
    peers: dict[str, dict[int, Measured]]  # peer name -> concurrency -> figures
    versions: dict[str, str]  # distribution -> version in the peers' interpreter
    service_tensorflow: str  # tensorflow-cpu in the service's interpreter
    python: str
    largest_difference: dict[str, float]  # peer -> max |its probability - ours| on smoke texts


@dataclass(frozen=True)
class Results:
    single: dict[int, tuple[Measured, Measured]]  # concurrency -> (service, ceiling)
    bare: dict[int, Measured]  # the bare batching server, in the same rounds as `single`
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
    version_costs: VersionCosts | None = None
    peers: PeerResults | None = None


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


def check_peers(options: Options) -> dict[str, str]:
    """Before anything is measured: the peers' interpreter has every peer asked for and the
    service's TensorFlow (the same runtime on the same model, or no comparison). The versions.
    """
    versions = _distribution_versions(options.peers_python)
    missing = [
        PEERS[name].distribution
        for name in options.peers
        if versions.get(PEERS[name].distribution) == "not installed"
    ]
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not installed in {options.peers_python}: `make bench-peers` "
            "installs the peers into .venv-peers"
        )
    ours = _installed_version("tensorflow-cpu")
    if versions.get("tensorflow-cpu") != ours:
        raise RuntimeError(
            f"the peers' interpreter {options.peers_python} has tensorflow-cpu "
            f"{versions.get('tensorflow-cpu')}, the service's {ours}: `make bench-peers` "
            "installs the same version"
        )
    return versions


def run_benchmark(options: Options) -> Results:
    context = multiprocessing.get_context("spawn")
    version_dir = newest_version_dir(options.model_base)
    peer_versions = check_peers(options) if options.peers else {}
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
        version_costs = None
        if options.compare_version is not None:
            version_costs = _version_costs(
                tf_pool, version_dir, options.compare_version, bench.texts, options.rounds
            )
        single: dict[int, tuple[Measured, Measured]] = {}
        bare: dict[int, Measured] = {}
        batch: dict[int, Measured] = {}
        peers = None
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
            running_server(
                "bare", BARE, bench.service_env(), REPO_ROOT, "/readyz", listeners=workers
            ) as bare_server,
        ):
            bench.smoke_check(ceiling, PREDICT_PATH, bench.single_bodies[0])
            bench.smoke_check(service, PREDICT_PATH, bench.single_bodies[0])
            bench.smoke_check(service, BATCH_PATH, bench.batch_bodies[0])
            bench.smoke_check(bare_server, PREDICT_PATH, bench.single_bodies[0])
            for concurrency in options.concurrency:
                measured_service, measured_ceiling, measured_bare = bench.compare(
                    [service, ceiling, bare_server], PREDICT_PATH, bench.single_bodies, concurrency
                )
                single[concurrency] = (measured_service, measured_ceiling)
                bare[concurrency] = measured_bare
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
            if options.peers:
                peers = measure_peers(bench, service, version_dir, workers, peer_versions)

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
        bare=bare,
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
        version_costs=version_costs,
        peers=peers,
    )


def _version_costs(
    tf_pool: ProcessPoolExecutor,
    default_dir: Path,
    older_dir: Path,
    texts: list[str],
    rounds: int,
) -> VersionCosts:
    """The default version's in-process cost per text against an older one's, in the pool
    whose entry point set the service's TensorFlow threads (bench.inprocess.configure_threads).
    """
    if default_dir.resolve() == older_dir.resolve():
        logger.info("the default version is %s itself: no cost ratio to measure", older_dir)
        return VersionCosts(default_dir.name, older_dir.name, [], [])
    default, older = (default_dir, False), (older_dir, False)  # each as the service loads it
    figures = tf_pool.submit(
        compare, [default, older], texts, MODEL_COST_BATCH_SIZE, rounds
    ).result()
    costs = VersionCosts(default_dir.name, older_dir.name, figures[default], figures[older])
    logger.info(
        "in process, version %s / version %s: %.3f x CPU per text",
        costs.default,
        costs.older,
        costs.ratio,
    )
    return costs


def measure_peers(
    bench: Bench, service: Server, version_dir: Path, workers: int, versions: dict[str, str]
) -> PeerResults:
    """Peer mode: start the peers on the same model with the same workers, check they answer
    what our service answers, then alternate rounds between the service and every peer at each
    of PEER_CONCURRENCY with the same texts."""
    options = bench.options
    with (
        tempfile.TemporaryDirectory(prefix="bench-peers-") as scratch,
        contextlib.ExitStack() as stack,
    ):
        launch = Launch(options.peers_python, HOST, workers, version_dir, Path(scratch))
        running: dict[str, Server] = {}
        for name in options.peers:
            peer = PEERS[name]
            running[name] = stack.enter_context(
                running_command(
                    f"peer-{name}",
                    functools.partial(peer.command, launch),
                    peer.environment(launch),
                    REPO_ROOT,
                    peer.ready_path,
                )
            )
        differences = {
            name: _largest_difference(bench, service, server, PEERS[name].predict_path)
            for name, server in running.items()
        }
        endpoints = [(service, PREDICT_PATH)] + [
            (server, PEERS[name].predict_path) for name, server in running.items()
        ]
        service_figures: dict[int, Measured] = {}
        peer_figures: dict[str, dict[int, Measured]] = {name: {} for name in running}
        for concurrency in PEER_CONCURRENCY:
            measured = bench.compare_endpoints(
                endpoints, bench.single_bodies, concurrency, warm_until_steady=True
            )
            service_figures[concurrency] = measured[0]
            for name, figures in zip(running, measured[1:], strict=True):
                peer_figures[name][concurrency] = figures
    return PeerResults(
        service=service_figures,
        peers=peer_figures,
        versions=versions,
        service_tensorflow=_installed_version("tensorflow-cpu"),
        python=options.peers_python,
        largest_difference=differences,
    )


def _largest_difference(bench: Bench, service: Server, peer: Server, path: str) -> float:
    """The largest |peer - service| probability on a few texts; refuses a peer that errs or
    answers another model (a comparison of different work would be meaningless)."""
    largest = 0.0
    for body in bench.single_bodies[:4]:
        answers = []
        for server, server_path in ((service, PREDICT_PATH), (peer, path)):
            status, answer = post_json(server.port, server_path, body)
            if status != 200:
                raise RuntimeError(
                    f"{server.name} {server_path} answered {status}: {answer[:200]!r}"
                )
            answers.append(float(json.loads(answer)["probability"]))
        largest = max(largest, abs(answers[0] - answers[1]))
    if largest > PEER_AGREEMENT:
        raise RuntimeError(f"{peer.name} answers other probabilities (by up to {largest:.2g})")
    return largest


def _distribution_versions(python: str) -> dict[str, str]:
    """The peers' versions, read in their own interpreter (absent ones: 'not installed')."""
    script = (
        "import importlib.metadata as m, json, sys\n"
        "def version(name):\n"
        "    try:\n"
        "        return m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        return 'not installed'\n"
        "json.dump({name: version(name) for name in sys.argv[1:]}, sys.stdout)\n"
    )
    completed = subprocess.run(
        [python, "-c", script, *PEER_DISTRIBUTIONS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    versions: dict[str, str] = json.loads(completed.stdout)
    return versions


def _installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _load_average() -> str:
    """The 1/5/15-minute load averages: a busy machine explains noisy figures."""
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
