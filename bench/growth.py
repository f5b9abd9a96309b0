"""`python -m bench.growth`: how time per request grows with text length and batch size.

Starts the service as it ships (`python -m app`, REST and gRPC, bench.servers) and sends it
one request at a time (concurrency 1) over each protocol, for every combination of
characters per text (10, 100, 1,000, 10,000) and texts per request (1, 16, 256):

* REST: `POST /v1/predict` for one text, `POST /v1/predict/batch` for more, driven by the
  benchmark's raw-socket client (bench.loadclient) with the bodies encoded in advance;
* gRPC: Open Inference `ModelInfer` with the texts as one BYTES tensor, sent as bytes built
  from the server's own copy of the protocol and answered as bytes (no client-side protobuf
  work in the timing, as REST parses no JSON).

Texts are cut from real IMDB test reviews (bench.texts): consecutive reviews joined by a space
and cut to the exact length, each text starting at a different review. The machine is
shared, so the cells are measured in rounds (every cell once per round, the protocols taking
turns), each cell bounded by a request count and a time budget per round; the figure is the
median latency over all its requests. Beside it, the server's CPU time per request from
/proc, which a busy machine moves less than wall time.

Prints Markdown tables (stdout) and writes a PNG plot (bench.growth_plot).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import grpc
import orjson

from bench import REPO_ROOT
from bench.cli import add_service_env, command_line, configure_logging, positive_ints
from bench.growth_plot import plot_growth
from bench.inprocess import newest_version_dir
from bench.loadclient import LoadSpec, run_load
from bench.servers import (
    HOST,
    SERVICE,
    cpu_seconds,
    free_port,
    quiet_service_env,
    running_server,
    settings_from_env,
)
from bench.texts import DEFAULT_DATA, load_review_texts

logger = logging.getLogger("bench.growth")

PROTOCOLS = ("rest", "grpc")
PREDICT_PATH = "/v1/predict"
BATCH_PATH = "/v1/predict/batch"
DEFAULT_PLOT = REPO_ROOT / "docs" / "benchmark-growth.png"
_DISTINCT_BODIES = 4  # per cell: requests rotate through them, so no answer is cached anywhere
_REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True, order=True)
class Cell:
    """One measured combination."""

    protocol: str
    batch_size: int
    chars: int

    @property
    def endpoint(self) -> str:
        if self.protocol == "grpc":
            return "ModelInfer"
        return PREDICT_PATH if self.batch_size == 1 else BATCH_PATH


@dataclass
class CellResult:
    """Every timed request of one cell, over all rounds, and the server CPU they took."""

    cell: Cell
    latencies_ms: list[float] = field(default_factory=list)
    server_cpu_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def ms_per_request(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def ms_per_text(self) -> float:
        return self.ms_per_request / self.cell.batch_size

    @property
    def server_cpu_ms_per_request(self) -> float:
        return 1000.0 * self.server_cpu_s / self.requests if self.requests else float("nan")


@dataclass(frozen=True)
class Options:
    data: Path
    model_base: Path
    reviews: int
    lengths: list[int]
    batch_sizes: list[int]
    protocols: list[str]
    rounds: int
    requests: int
    cell_seconds: float
    warmup_requests: int
    service_env: dict[str, str]
    plot: Path


# Texts and bodies ---------------------------------------------------------------------------


def texts_of_length(reviews: Sequence[str], chars: int, count: int, first: int = 0) -> list[str]:
    """`count` texts of exactly `chars` characters from real reviews.

    Text i starts at review `first + i` (wrapping around) and goes on through the next reviews,
    joined by a space, until it is long enough; never blank, since a review never starts blank
    (bench.texts strips them).
    """
    if not reviews:
        raise ValueError("at least one review is needed")
    texts = []
    for index in range(first, first + count):
        parts: list[str] = []
        length = 0
        position = index
        while length < chars:
            review = reviews[position % len(reviews)]
            parts.append(review)
            length += len(review) + 1
            position += 1
        texts.append(" ".join(parts)[:chars])
    return texts


def rest_bodies(reviews: Sequence[str], cell: Cell) -> list[bytes]:
    """The cell's JSON bodies: `{"text": ...}` for one text, `{"texts": [...]}` for more."""
    bodies = []
    for body in range(_DISTINCT_BODIES):
        texts = texts_of_length(reviews, cell.chars, cell.batch_size, body * cell.batch_size)
        document = {"text": texts[0]} if cell.batch_size == 1 else {"texts": texts}
        bodies.append(orjson.dumps(document))
    return bodies


def grpc_payloads(reviews: Sequence[str], cell: Cell, model_name: str) -> list[bytes]:
    """The cell's serialized `ModelInferRequest`s: one BYTES input `text` of shape [N].

    Built from the server's own descriptor pool (app.protocols.grpc.open_inference): a client
    library's generated copy of package `inference` may clash with another in one process.
    """
    from app.protocols.grpc.open_inference import load_protocol

    protocol = load_protocol()
    payloads = []
    for body in range(_DISTINCT_BODIES):
        texts = texts_of_length(reviews, cell.chars, cell.batch_size, body * cell.batch_size)
        request = protocol.ModelInferRequest(model_name=model_name)
        tensor = request.inputs.add(name="text", datatype="BYTES", shape=[len(texts)])
        tensor.contents.bytes_contents.extend(text.encode() for text in texts)
        payloads.append(request.SerializeToString())
    return payloads


# Drivers: one timed request after the other --------------------------------------------------


class Driver(Protocol):
    def time_requests(
        self, cell: Cell, bodies: Sequence[bytes], count: int, seconds: float
    ) -> list[float]:
        """Milliseconds of up to `count` requests sent one after the other, for about
        `seconds` at most (at least one); raises if any is not answered with success."""
        ...


class RestDriver:
    """Times requests with the raw-socket client, one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.port = port

    def time_requests(
        self, cell: Cell, bodies: Sequence[bytes], count: int, seconds: float
    ) -> list[float]:
        spec = LoadSpec(
            HOST,
            self.port,
            cell.endpoint,
            bodies,
            concurrency=1,
            max_requests=count,
            duration_s=seconds,
            request_timeout_s=_REQUEST_TIMEOUT_S,
        )
        result = run_load(spec)
        if set(result.status_counts) - {200} or result.timeouts or result.errors:
            raise RuntimeError(
                f"{cell}: answers {result.status_counts}, {result.timeouts} timeouts, "
                f"{result.errors} connection errors"
            )
        return [latency * 1000.0 for latency in result.latencies_s]


class GrpcDriver:
    """Times `ModelInfer` calls on one channel (one HTTP/2 connection, so one worker)."""

    def __init__(self, address: str) -> None:
        from app.protocols.grpc.open_inference import SERVICE_NAME

        self.channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(self.channel).result(timeout=60)
        # No serializers: bytes in, bytes out.
        self.model_infer: Callable[..., bytes] = self.channel.unary_unary(
            f"/{SERVICE_NAME}/ModelInfer"
        )

    def time_requests(
        self, cell: Cell, bodies: Sequence[bytes], count: int, seconds: float
    ) -> list[float]:
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds
        for index in range(count):
            started = time.perf_counter()
            if started >= deadline and latencies:
                break
            self.model_infer(bodies[index % len(bodies)], timeout=_REQUEST_TIMEOUT_S)
            latencies.append((time.perf_counter() - started) * 1000.0)
        return latencies

    def close(self) -> None:
        self.channel.close()


# The run ------------------------------------------------------------------------------------


def cells(options: Options) -> list[Cell]:
    """Every combination, in round order: protocols take turns within each (batch, length)."""
    return [
        Cell(protocol, batch_size, chars)
        for batch_size in options.batch_sizes
        for chars in options.lengths
        for protocol in options.protocols
    ]


def run_growth(options: Options) -> list[CellResult]:
    """Start the service, warm every cell, then measure all cells in rounds."""
    reviews = load_review_texts(options.data, options.reviews)
    grpc_port = free_port()
    env = quiet_service_env(options.model_base, options.service_env, grpc_port)
    settings = settings_from_env(env)
    measured = cells(options)
    results = {cell: CellResult(cell) for cell in measured}
    bodies = {
        cell: (
            rest_bodies(reviews, cell)
            if cell.protocol == "rest"
            else grpc_payloads(reviews, cell, settings.model_name)
        )
        for cell in measured
    }
    with (
        running_server(
            "service", SERVICE, env, REPO_ROOT, "/readyz", listeners=settings.workers
        ) as server,
        contextlib.ExitStack() as stack,
    ):
        drivers: dict[str, Driver] = {"rest": RestDriver(server.port)}
        if "grpc" in options.protocols:
            grpc_driver = GrpcDriver(f"{HOST}:{grpc_port}")
            stack.callback(grpc_driver.close)
            drivers["grpc"] = grpc_driver
        for cell in measured:  # warm-up, and a check that every cell is answered
            drivers[cell.protocol].time_requests(
                cell, bodies[cell], max(1, options.warmup_requests), options.cell_seconds
            )
        for round_index in range(options.rounds):
            for cell in measured:
                cpu_before = cpu_seconds(server.pid)
                latencies = drivers[cell.protocol].time_requests(
                    cell, bodies[cell], options.requests, options.cell_seconds
                )
                results[cell].server_cpu_s += cpu_seconds(server.pid) - cpu_before
                results[cell].latencies_ms.extend(latencies)
            logger.info("round %d of %d done", round_index + 1, options.rounds)
    return [results[cell] for cell in measured]


# Report -------------------------------------------------------------------------------------


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base > 0 else "n/a"


def render(options: Options, results: Sequence[CellResult], context: str) -> str:
    """The Markdown report: every cell, then ms per request by length for each row."""
    by_cell = {result.cell: result for result in results}
    shortest, single = min(options.lengths), min(options.batch_sizes)
    lines = [
        "## Cost growth: time per request by text length and batch size",
        "",
        context,
        "",
        "| protocol | endpoint | texts per request | characters per text | requests "
        "| ms per request (median) | ms per text | server CPU ms per request "
        f"| vs {shortest:,} characters | per text vs {single} text(s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        cell = result.cell
        shortest_cell = by_cell[Cell(cell.protocol, cell.batch_size, shortest)]
        single_cell = by_cell[Cell(cell.protocol, single, cell.chars)]
        lines.append(
            f"| {cell.protocol} | {cell.endpoint} | {cell.batch_size} | {cell.chars:,} "
            f"| {result.requests} | {result.ms_per_request:.2f} | {result.ms_per_text:.3f} "
            f"| {result.server_cpu_ms_per_request:.2f} "
            f"| {_ratio(result.ms_per_request, shortest_cell.ms_per_request)} "
            f"| {_ratio(result.ms_per_text, single_cell.ms_per_text)} |"
        )
    lengths = sorted(options.lengths)
    lines += [
        "",
        "ms per request (median), by characters per text:",
        "",
        "| protocol | texts per request | " + " | ".join(f"{n:,}" for n in lengths) + " |",
        "|---|---:|" + "---:|" * len(lengths),
    ]
    for protocol in options.protocols:
        for batch_size in options.batch_sizes:
            figures = [by_cell[Cell(protocol, batch_size, n)].ms_per_request for n in lengths]
            lines.append(
                f"| {protocol} | {batch_size} | "
                + " | ".join(f"{figure:.2f}" for figure in figures)
                + " |"
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class RunFacts:
    """Where and how the figures were taken."""

    commit: str
    version: str
    workers: int
    load_average: str

    @classmethod
    def collect(cls, options: Options) -> RunFacts:
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
        return cls(
            commit=commit or "unknown",
            version=newest_version_dir(options.model_base).name,
            workers=settings_from_env(options.service_env).workers,
            load_average=load_average,
        )

    def title(self) -> str:
        return (
            f"commit {self.commit}, model version {self.version}, {self.workers} worker(s), "
            "concurrency 1, medians"
        )

    def describe(self, options: Options) -> str:
        return (
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit `{self.commit}`, "
            f"model version {self.version} (`{options.model_base}`), `python -m app` with "
            f"{self.workers} worker(s) on 127.0.0.1, concurrency 1. Texts cut from "
            f"{options.reviews} IMDB test reviews. Per cell: {max(1, options.warmup_requests)} "
            f"warm-up request(s), then {options.rounds} round(s) of at most {options.requests} "
            f"requests or {options.cell_seconds:g} s; the figure is the median over all its "
            "requests. REST: the raw-socket client (bench.loadclient); gRPC: Open Inference "
            "`ModelInfer`, bytes in and out, grpcio's blocking stub. Server CPU from /proc, in "
            f"clock ticks of {1000 / os.sysconf('SC_CLK_TCK'):g} ms: coarse for cells of few, "
            f"short requests. Load average at the end: {self.load_average}."
        )


# Command line -------------------------------------------------------------------------------


def _protocol_list(value: str) -> list[str]:
    protocols = [part.strip() for part in value.split(",") if part.strip()]
    if not protocols or set(protocols) - set(PROTOCOLS):
        raise argparse.ArgumentTypeError(f"a comma-separated list of {', '.join(PROTOCOLS)}")
    return protocols


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.growth",
        description="Time per request by text length and batch size, REST and gRPC, "
        "at concurrency 1 against the service as shipped (see the module doc).",
    )
    parser.add_argument("--data", type=Path, default=REPO_ROOT / DEFAULT_DATA)
    parser.add_argument("--model-base", type=Path, default=REPO_ROOT / "model" / "sentiment")
    parser.add_argument(
        "--reviews", type=int, default=400, help="IMDB test reviews the texts are cut from"
    )
    parser.add_argument("--lengths", type=positive_ints, default=[10, 100, 1_000, 10_000])
    parser.add_argument("--batch-sizes", type=positive_ints, default=[1, 16, 256])
    parser.add_argument("--protocols", type=_protocol_list, default=list(PROTOCOLS))
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every cell")
    parser.add_argument("--requests", type=int, default=10, help="requests per cell and round")
    parser.add_argument(
        "--cell-seconds", type=float, default=4.0, help="time budget per cell and round"
    )
    parser.add_argument("--warmup-requests", type=int, default=2, help="per cell (at least 1)")
    add_service_env(parser)
    parser.add_argument(
        "--plot", type=Path, default=DEFAULT_PLOT, help="where to write the PNG plot"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests < 1 or args.cell_seconds <= 0:
        parser.error("--rounds, --requests and --cell-seconds must be positive")
    return Options(
        data=args.data,
        model_base=args.model_base.resolve(),
        reviews=args.reviews,
        lengths=sorted(set(args.lengths)),
        batch_sizes=sorted(set(args.batch_sizes)),
        protocols=args.protocols,
        rounds=args.rounds,
        requests=args.requests,
        cell_seconds=args.cell_seconds,
        warmup_requests=args.warmup_requests,
        service_env=dict(args.service_env),
        plot=args.plot,
    )


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    options = parse_options(argv)
    started = time.monotonic()
    try:
        results = run_growth(options)
    except (RuntimeError, OSError, ValueError, grpc.RpcError) as exc:
        logger.error("growth benchmark failed: %s", exc)
        return 2
    facts = RunFacts.collect(options)
    sys.stdout.write(render(options, results, facts.describe(options)) + "\n")
    plot_growth(results, options.plot, f"Cost growth: {facts.title()}")
    command = command_line("bench.growth", argv)
    sys.stdout.write(
        f"\nPlot: `{options.plot}`. Command: `{command}` "
        f"({time.monotonic() - started:.0f} s in total)\n"
    )
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
