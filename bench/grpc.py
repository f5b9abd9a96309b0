"""`python -m bench.grpc`: gRPC beside REST on the same texts, single-text requests.

Starts the service as it ships (`python -m app` with its worker count, REST and gRPC,
bench.servers) and loads it with one real IMDB test review per request (bench.texts), the same
texts in the same order over both protocols:

* REST: `POST /v1/predict` `{"text": ...}`, driven by wrk (bench.wrk) when installed, else by
  the raw-socket client (bench.loadclient); bodies encoded once;
* gRPC: Open Inference `ModelInfer` with one BYTES input `text` of shape [1], serialized once
  from the server's own copy of the protocol and sent as bytes by bench.grpc_load (grpc.aio in
  spawned processes, one channel per N in-flight calls).

At each concurrency (1 and 64 by default) the protocols take turns, round after round (the order
flips every round), each run bounded by a request count and a time budget; the machine is
shared, so the figures are the medians over rounds. Beside each figure: the load client's CPU
(cores busy, so a reader can judge whether it limited the rate) and the server's CPU per request
from /proc. Prints Markdown (stdout): the table and the gRPC/REST ratios.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import orjson

from bench import REPO_ROOT
from bench.cli import add_service_env, command_line, configure_logging, positive_ints
from bench.grpc_load import OK, GrpcLoadSpec, run_grpc_load
from bench.inprocess import newest_version_dir
from bench.loadclient import LoadResult, LoadSpec, run_load
from bench.servers import (
    HOST,
    SERVICE,
    Server,
    cpu_seconds,
    free_port,
    listening_sockets,
    post_json,
    quiet_service_env,
    running_server,
    settings_from_env,
)
from bench.texts import DEFAULT_DATA, load_review_texts
from bench.wrk import find_wrk, run_wrk

logger = logging.getLogger("bench.grpc")

PROTOCOLS = ("rest", "grpc")
PREDICT_PATH = "/v1/predict"
_READY_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Options:
    data: Path
    model_base: Path
    reviews: int
    concurrency: list[int]
    rounds: int
    requests: int
    seconds: float
    warmup_seconds: float
    client: str  # REST client: auto, wrk or python
    grpc_processes: int
    calls_per_channel: int
    request_timeout_s: float
    service_env: dict[str, str]


@dataclass
class Cell:
    """Every round of one protocol at one concurrency, and the server CPU it took."""

    protocol: str
    concurrency: int
    rounds: list[LoadResult] = field(default_factory=list)
    server_cpu_s: float = 0.0

    @property
    def requests(self) -> int:
        return sum(result.completed for result in self.rounds)

    @property
    def errors(self) -> int:
        """Requests not answered with success: other statuses, timeouts, connection errors."""
        success = 200 if self.protocol == "rest" else OK
        return sum(
            sum(count for status, count in result.status_counts.items() if status != success)
            + result.timeouts
            + result.errors
            for result in self.rounds
        )

    def _median(self, figures: Sequence[float]) -> float:
        return statistics.median(figures) if figures else float("nan")

    @property
    def requests_per_s(self) -> float:
        return self._median([result.requests_per_s for result in self.rounds])

    @property
    def p50_ms(self) -> float:
        return self._median([result.p50_ms for result in self.rounds])

    @property
    def p99_ms(self) -> float:
        return self._median([result.p99_ms for result in self.rounds])

    @property
    def client_cores(self) -> float:
        return self._median([result.client_cpu_share for result in self.rounds])

    @property
    def client_cpu_us_per_request(self) -> float:
        spent = sum(result.client_cpu_s for result in self.rounds)
        return 1e6 * spent / self.requests if self.requests else float("nan")

    @property
    def server_cpu_ms_per_request(self) -> float:
        return 1000.0 * self.server_cpu_s / self.requests if self.requests else float("nan")


# Requests -----------------------------------------------------------------------------------


def rest_bodies(texts: Sequence[str]) -> list[bytes]:
    return [orjson.dumps({"text": text}) for text in texts]


def grpc_payloads(texts: Sequence[str], model_name: str) -> list[bytes]:
    """Serialized `ModelInferRequest`s, one BYTES text each, from the server's own descriptor
    pool (a client library's generated `inference` package may clash with another)."""
    from app.protocols.grpc.open_inference import load_protocol

    protocol = load_protocol()
    payloads = []
    for text in texts:
        request = protocol.ModelInferRequest(model_name=model_name)
        tensor = request.inputs.add(name="text", datatype="BYTES", shape=[1])
        tensor.contents.bytes_contents.append(text.encode())
        payloads.append(request.SerializeToString())
    return payloads


def model_infer_method() -> str:
    from app.protocols.grpc.open_inference import SERVICE_NAME

    return f"/{SERVICE_NAME}/ModelInfer"


# Drivers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drivers:
    """How each protocol is loaded in this run."""

    options: Options
    rest_port: int
    grpc_address: str
    rest_bodies: list[bytes]
    grpc_payloads: list[bytes]
    wrk: str | None

    def run(self, protocol: str, concurrency: int, seconds: float) -> LoadResult:
        if protocol == "rest":
            spec = LoadSpec(
                HOST,
                self.rest_port,
                PREDICT_PATH,
                self.rest_bodies,
                concurrency=concurrency,
                max_requests=self.options.requests,
                duration_s=seconds,
                request_timeout_s=self.options.request_timeout_s,
            )
            if self.wrk is not None:
                return run_wrk(spec, self.wrk, threads=1)
            return run_load(spec)
        return run_grpc_load(
            GrpcLoadSpec(
                self.grpc_address,
                model_infer_method(),
                self.grpc_payloads,
                concurrency=concurrency,
                max_requests=self.options.requests,
                duration_s=seconds,
                request_timeout_s=self.options.request_timeout_s,
                calls_per_channel=self.options.calls_per_channel,
                processes=self.options.grpc_processes,
            )
        )

    def describe_clients(self) -> str:
        rest = (
            "wrk, 1 thread, one keep-alive connection per in-flight request"
            if self.wrk is not None
            else "bench.loadclient (Python raw sockets, uvloop, in the benchmark's process), "
            "one keep-alive connection per in-flight request"
        )
        grpc_client = (
            f"bench.grpc_load: grpc.aio in {self.options.grpc_processes} spawned process(es), "
            f"one channel (HTTP/2 connection) per {self.options.calls_per_channel} in-flight "
            "calls, requests serialized once and sent as bytes (no protobuf work per call)"
        )
        return f"REST client: {rest}. gRPC client: {grpc_client}."


# The run ------------------------------------------------------------------------------------


def wait_grpc_listeners(server: Server, port: int, listeners: int) -> None:
    """Every worker listens on the gRPC port too before anything is measured."""
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while listening_sockets(port) < listeners:
        if time.monotonic() > deadline or server.process.poll() is not None:
            raise RuntimeError(f"gRPC port {port} not served:\n{server.log_tail()}")
        time.sleep(0.2)


def smoke_check(drivers: Drivers) -> None:
    """One request per protocol before measuring: a benchmark of error answers means nothing."""
    status, answer = post_json(drivers.rest_port, PREDICT_PATH, drivers.rest_bodies[0])
    if status != 200:
        raise RuntimeError(f"REST {PREDICT_PATH} answered {status}: {answer[:200]!r}")
    with grpc.insecure_channel(drivers.grpc_address) as channel:
        model_infer: Callable[..., bytes] = channel.unary_unary(model_infer_method())
        model_infer(drivers.grpc_payloads[0], timeout=60)


def run_benchmark(options: Options) -> tuple[list[Cell], Drivers, int]:
    """Start the service, warm both protocols, then measure every cell in rounds."""
    texts = load_review_texts(options.data, options.reviews)
    grpc_port = free_port()
    env = quiet_service_env(options.model_base, options.service_env, grpc_port)
    settings = settings_from_env(env)
    cells = {
        (protocol, concurrency): Cell(protocol, concurrency)
        for concurrency in options.concurrency
        for protocol in PROTOCOLS
    }
    wrk = None if options.client == "python" else find_wrk()
    if wrk is None and options.client == "wrk":
        raise RuntimeError("--client wrk, but wrk is not installed (apt-get install wrk)")
    with running_server(
        "service", SERVICE, env, REPO_ROOT, "/readyz", listeners=settings.workers
    ) as server:
        wait_grpc_listeners(server, grpc_port, settings.workers)
        drivers = Drivers(
            options,
            server.port,
            f"{HOST}:{grpc_port}",
            rest_bodies(texts),
            grpc_payloads(texts, settings.model_name),
            wrk,
        )
        smoke_check(drivers)
        for protocol in PROTOCOLS:  # warm-up at the highest concurrency, not measured
            drivers.run(protocol, max(options.concurrency), options.warmup_seconds)
        for round_index in range(options.rounds):
            order = PROTOCOLS if round_index % 2 == 0 else PROTOCOLS[::-1]
            for concurrency in options.concurrency:
                for protocol in order:
                    cell = cells[(protocol, concurrency)]
                    cpu_before = cpu_seconds(server.pid)
                    cell.rounds.append(drivers.run(protocol, concurrency, options.seconds))
                    cell.server_cpu_s += cpu_seconds(server.pid) - cpu_before
            logger.info("round %d of %d done", round_index + 1, options.rounds)
    return list(cells.values()), drivers, settings.workers


# Report -------------------------------------------------------------------------------------


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base > 0 else "n/a"


def render(cells: Sequence[Cell], context: str) -> str:
    """The Markdown report: every cell, then gRPC against REST at each concurrency."""
    lines = [
        "## gRPC beside REST: single-text requests",
        "",
        context,
        "",
        "| protocol | concurrency | requests | req/s | p50 ms | p99 ms | errors "
        "| client CPU (cores) | client CPU µs per request | server CPU ms per request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in cells:
        lines.append(
            f"| {cell.protocol} | {cell.concurrency} | {cell.requests} "
            f"| {cell.requests_per_s:.0f} | {cell.p50_ms:.2f} | {cell.p99_ms:.2f} "
            f"| {cell.errors} | {cell.client_cores:.2f} | {cell.client_cpu_us_per_request:.0f} "
            f"| {cell.server_cpu_ms_per_request:.2f} |"
        )
    by_key = {(cell.protocol, cell.concurrency): cell for cell in cells}
    lines += [
        "",
        "gRPC / REST (above 1: gRPC higher):",
        "",
        "| concurrency | req/s | p50 | p99 | server CPU per request |",
        "|---:|---:|---:|---:|---:|",
    ]
    for concurrency in sorted({cell.concurrency for cell in cells}):
        rest, grpc_cell = by_key[("rest", concurrency)], by_key[("grpc", concurrency)]
        lines.append(
            f"| {concurrency} | {_ratio(grpc_cell.requests_per_s, rest.requests_per_s)} "
            f"| {_ratio(grpc_cell.p50_ms, rest.p50_ms)} | {_ratio(grpc_cell.p99_ms, rest.p99_ms)} "
            f"| {_ratio(grpc_cell.server_cpu_ms_per_request, rest.server_cpu_ms_per_request)} |"
        )
    return "\n".join(lines)


def describe(options: Options, drivers: Drivers, workers: int) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    try:
        load_average = " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load_average = "unknown"
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit `{commit or 'unknown'}`, "
        f"model version {newest_version_dir(options.model_base).name}, `python -m app` with "
        f"{workers} worker(s) on 127.0.0.1, REST and gRPC. One text per request, "
        f"{options.reviews} IMDB test reviews in turn, the same over both protocols. "
        f"{options.rounds} round(s), the protocols alternating (order flipped every round), each "
        f"run at most {options.requests} requests or {options.seconds:g} s after "
        f"{options.warmup_seconds:g} s of warm-up per protocol; figures are medians over rounds, "
        "requests and errors are totals (errors: any answer but 200/OK, timeouts, connection "
        f"errors). {drivers.describe_clients()} Client CPU: the load client's CPU seconds per "
        "wall second (1.00 = one core busy; the machine has "
        f"{_cores()}, shared by the client and the server), and per request. "
        f"Load average at the end: {load_average}."
    )


def _cores() -> str:
    import os

    return f"{os.cpu_count() or 0} core(s)"


# Command line -------------------------------------------------------------------------------


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.grpc",
        description="gRPC (Open Inference ModelInfer) beside REST (/v1/predict) on the same "
        "texts against the service as shipped (see the module doc).",
    )
    parser.add_argument("--data", type=Path, default=REPO_ROOT / DEFAULT_DATA)
    parser.add_argument("--model-base", type=Path, default=REPO_ROOT / "model" / "sentiment")
    parser.add_argument("--reviews", type=int, default=256, help="IMDB test reviews sent")
    parser.add_argument("--concurrency", type=positive_ints, default=[1, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=50_000, help="per run, at most")
    parser.add_argument("--seconds", type=float, default=5.0, help="per run, at most")
    parser.add_argument("--warmup-seconds", type=float, default=2.0, help="per protocol")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--grpc-processes", type=int, default=1)
    parser.add_argument("--calls-per-channel", type=int, default=16)
    parser.add_argument("--request-timeout", type=float, default=10.0)
    add_service_env(parser)
    args = parser.parse_args(argv)
    if min(args.rounds, args.requests, args.grpc_processes, args.calls_per_channel) < 1:
        parser.error("--rounds, --requests, --grpc-processes, --calls-per-channel: at least 1")
    if min(args.seconds, args.warmup_seconds, args.request_timeout) <= 0:
        parser.error("--seconds, --warmup-seconds and --request-timeout must be positive")
    return Options(
        data=args.data,
        model_base=args.model_base.resolve(),
        reviews=args.reviews,
        concurrency=sorted(set(args.concurrency)),
        rounds=args.rounds,
        requests=args.requests,
        seconds=args.seconds,
        warmup_seconds=args.warmup_seconds,
        client=args.client,
        grpc_processes=args.grpc_processes,
        calls_per_channel=args.calls_per_channel,
        request_timeout_s=args.request_timeout,
        service_env=dict(args.service_env),
    )


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    options = parse_options(argv)
    started = time.monotonic()
    try:
        cells, drivers, workers = run_benchmark(options)
    except (RuntimeError, OSError, ValueError, grpc.RpcError) as exc:
        logger.error("gRPC benchmark failed: %s", exc)
        return 2
    sys.stdout.write(render(cells, describe(options, drivers, workers)) + "\n")
    command = command_line("bench.grpc", argv)
    sys.stdout.write(f"\nCommand: `{command}` ({time.monotonic() - started:.0f} s in total)\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
