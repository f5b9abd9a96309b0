"""Steady REST and gRPC load against a server that is being stopped, and what became of it.

Used by tests/app/test_drain.py and runnable by hand to measure a drain (the figures in
docs/operations.md)::

    .venv/bin/python -m tests.app.drain_load --runs 5 [--workers 2] [--grpc-clients 8]

Each REST client is one aiohttp session with one keep-alive connection, posting back to back
and reconnecting after ``Connection: close`` as aiohttp does; each gRPC client is one channel
calling ``ModelInfer``. After ``--signal-after`` seconds the server gets SIGTERM; every
request then ends as one of:

* ``answered``: a 200 (REST) or OK (gRPC);
* ``refused``: a clean refusal the client can retry: a 503, a connection refused before
  anything was sent, a gRPC UNAVAILABLE;
* ``lost``: anything else: a reset or a closed connection after the request was sent (the
  client cannot tell whether it was scored), a timeout, another status.

A lost REST request also records whether it was the first on a new connection (``fresh``):
that is the signature of a connection reset from a listener's accept queue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import re
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import grpc

from bench.servers import HOST, SERVICE, free_port, running_server
from tests.paths import REPO_ROOT

TEXT = "A wonderful film, I loved every minute of it."
REQUEST_TIMEOUT_SECONDS = 30.0


@dataclass
class Outcomes:
    """How every request of one run ended, by transport."""

    rest: Counter[str] = field(default_factory=Counter)
    grpc: Counter[str] = field(default_factory=Counter)
    lost_details: list[str] = field(default_factory=list)
    queued_at_close: list[int] = field(default_factory=list)  # per worker, from its log
    grpc_stops: list[str] = field(default_factory=list)  # per worker: how its gRPC server stopped

    @property
    def lost(self) -> int:
        return self.rest["lost"] + self.grpc["lost"]

    def summary(self) -> dict[str, Any]:
        return {
            "rest": dict(self.rest),
            "grpc": dict(self.grpc),
            "queued_at_close": self.queued_at_close,
            "grpc_stops": self.grpc_stops,
            "lost": self.lost_details,
        }


async def _rest_client(
    url: str, stop: asyncio.Event, outcomes: Outcomes, max_requests: int
) -> None:
    fresh = SimpleNamespace(value=False)

    async def on_connection(session: Any, context: Any, params: Any) -> None:
        fresh.value = True

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_connection)
    connector = aiohttp.TCPConnector(limit=1)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, trace_configs=[trace]
    ) as session:
        for _ in range(max_requests):
            fresh.value = False
            try:
                async with session.post(f"{url}/v1/predict", json={"text": TEXT}) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientConnectorError as exc:
                # Nothing was sent: the server no longer listens (a clean refusal).
                if exc.os_error.errno in (errno.ECONNREFUSED,):
                    outcomes.rest["refused"] += 1
                    if stop.is_set():
                        return
                    continue
                outcomes.rest["lost"] += 1
                outcomes.lost_details.append(f"rest connect {exc.os_error!r} fresh=True")
                return
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcomes.rest["lost"] += 1
                outcomes.lost_details.append(
                    f"rest {type(exc).__name__}: {exc} fresh={fresh.value}"
                )
                if stop.is_set():
                    return
                continue
            if status == 200:
                outcomes.rest["answered"] += 1
            elif status == 503:
                outcomes.rest["refused"] += 1
            else:
                outcomes.rest["lost"] += 1
                outcomes.lost_details.append(f"rest status {status}")


async def _grpc_client(
    address: str, stop: asyncio.Event, outcomes: Outcomes, max_requests: int
) -> None:
    # The request is built from the server's own copy of the protocol (its own descriptor
    # pool): tritonclient's or kserve's generated modules clash with each other in one process
    # (package ``inference``), and the test process may hold either.
    from app.protocols.grpc.open_inference import SERVICE_NAME, load_protocol

    request = load_protocol().ModelInferRequest(model_name="sentiment")
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(TEXT.encode())
    payload = request.SerializeToString()
    async with grpc.aio.insecure_channel(address) as channel:
        model_infer = channel.unary_unary(f"/{SERVICE_NAME}/ModelInfer")  # bytes in and out
        for _ in range(max_requests):
            try:
                await model_infer(payload, timeout=REQUEST_TIMEOUT_SECONDS)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    outcomes.grpc["refused"] += 1
                    if stop.is_set():
                        return
                    await asyncio.sleep(0.01)
                    continue
                outcomes.grpc["lost"] += 1
                outcomes.lost_details.append(f"grpc {exc.code().name}: {exc.details()}")
                if stop.is_set():
                    return
                continue
            outcomes.grpc["answered"] += 1


async def drive(
    url: str,
    grpc_address: str | None,
    *,
    rest_clients: int,
    grpc_clients: int,
    signal_after: float,
    terminate: Any,
    max_seconds: float = 60.0,
    max_requests: int = 50_000,
) -> Outcomes:
    """Load until every client stopped after ``terminate()`` (called at ``signal_after``)."""
    outcomes = Outcomes()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(_rest_client(url, stop, outcomes, max_requests))
        for _ in range(rest_clients)
    ]
    if grpc_address is not None:
        tasks += [
            asyncio.create_task(_grpc_client(grpc_address, stop, outcomes, max_requests))
            for _ in range(grpc_clients)
        ]
    await asyncio.sleep(signal_after)
    terminate()
    stop.set()
    _, pending = await asyncio.wait(tasks, timeout=max_seconds)
    for task in pending:
        task.cancel()
        outcomes.lost_details.append("a client did not finish in time")
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            outcomes.lost_details.append(f"client crashed: {task.exception()!r}")
    return outcomes


def run_once(
    model_base: Path,
    workers: int | None,
    rest_clients: int,
    grpc_clients: int,
    signal_after: float = 2.0,
) -> Outcomes:
    """One fresh server, load, SIGTERM, and the outcomes; the server must exit 0.

    ``workers``: None serves with the shipped default (``Settings.workers``)."""
    grpc_port = free_port() if grpc_clients else 0
    env = {
        "SENTIMENT_MODEL_BASE_PATH": str(model_base),
        "SENTIMENT_RELOAD_INTERVAL_SECONDS": "0",
        "SENTIMENT_GRPC_PORT": str(grpc_port),
    }
    if workers is not None:
        env["SENTIMENT_WORKERS"] = str(workers)
    with running_server("drain", SERVICE, env, REPO_ROOT, "/readyz", 90) as server:
        address = f"{HOST}:{grpc_port}" if grpc_clients else None
        outcomes = asyncio.run(
            drive(
                server.url,
                address,
                rest_clients=rest_clients,
                grpc_clients=grpc_clients,
                signal_after=signal_after,
                terminate=lambda: server.process.send_signal(signal.SIGTERM),
            )
        )
        exit_code = server.process.wait(60)
        outcomes.queued_at_close = [
            int(found) for found in re.findall(r"\((\d+) waiting in the queue", server.log())
        ]
        outcomes.grpc_stops = re.findall(r"gRPC stopped in (.*)", server.log())
        if exit_code != 0 or "Traceback" in server.log():
            outcomes.lost_details.append(f"server exit {exit_code}: {server.log_tail()}")
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure what a SIGTERM under load loses.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: the shipped default")
    parser.add_argument("--rest-clients", type=int, default=32)
    parser.add_argument("--grpc-clients", type=int, default=8)
    parser.add_argument("--signal-after", type=float, default=2.0, help="seconds of load first")
    parser.add_argument("--model-base", type=Path, default=REPO_ROOT / "model" / "sentiment")
    args = parser.parse_args()
    for run in range(args.runs):
        outcomes = run_once(
            args.model_base,
            args.workers,
            args.rest_clients,
            args.grpc_clients,
            args.signal_after,
        )
        sys.stdout.write(json.dumps({"run": run, **outcomes.summary()}) + "\n")
        sys.stdout.flush()
        with contextlib.suppress(Exception):
            time.sleep(0.5)


if __name__ == "__main__":
    main()
