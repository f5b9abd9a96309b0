"""The peers of the benchmark's peer mode (`python -m bench --peers`): other ways to serve the
same SavedModel, each as its users would write it, measured beside our service in one run.

- `naive`: a FastAPI app with one `def` endpoint that calls the signature per request, under
  `uvicorn --workers N` (bench.peers.naive_fastapi);
- `bentoml`: a `@bentoml.service` with `workers=N` whose `@bentoml.api` calls the signature,
  under `bentoml serve` (bench.peers.bentoml_service);
- `litserve`: a `LitAPI` on `LitServer(accelerator="cpu", workers_per_device=N)`
  (bench.peers.litserve_api).

Every peer loads the model with `tf.saved_model.load` and calls `serving_default`, takes the
same JSON body as `POST /v1/predict` (`{"text": ...}`) and answers the probability. They read
the model directory and their worker count from the command line and environment the
benchmark gives them (never the service's Settings), and they run in their own interpreter:
`make bench-peers` installs BentoML and LitServe into `.venv-peers`, with the service's
TensorFlow, so their pins never touch the service's venv. This module imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The environment a peer reads its model and worker count from.
MODEL_DIR_ENV = "BENCH_PEER_MODEL_DIR"
WORKERS_ENV = "BENCH_PEER_WORKERS"
SIGNATURE = "serving_default"  # what a user of the SavedModel calls


def answer(probability: float) -> dict[str, Any]:
    """Every peer's answer: the label at 0.5 and the probability, as `/v1/predict` answers."""
    return {"label": "positive" if probability >= 0.5 else "negative", "probability": probability}


@dataclass(frozen=True)
class Launch:
    """How a peer is started (all but its port): the benchmark fills it in for each run."""

    python: str
    host: str
    workers: int
    model_dir: Path
    scratch_dir: Path  # a temporary directory the peer may write to (BentoML's home)


@dataclass(frozen=True)
class Peer:
    """One peer: how to start it, where it answers, and whose version the report states."""

    name: str
    distribution: str
    predict_path: str
    ready_path: str
    concurrency_setup: str  # how it serves concurrent requests, for the report
    command: Callable[[Launch, int], list[str]]  # (launch, port)
    environment: Callable[[Launch], dict[str, str]]


def _module_command(module: str) -> Callable[[Launch, int], list[str]]:
    def command(launch: Launch, port: int) -> list[str]:
        return [
            launch.python,
            "-m",
            module,
            "--host",
            launch.host,
            "--port",
            str(port),
            "--workers",
            str(launch.workers),
            "--model-dir",
            str(launch.model_dir),
        ]

    return command


def _bentoml_command(launch: Launch, port: int) -> list[str]:
    return [
        launch.python,
        "-m",
        "bentoml",
        "serve",
        "bench.peers.bentoml_service:SentimentService",
        "--host",
        launch.host,
        "--port",
        str(port),
    ]


def _model_environment(launch: Launch) -> dict[str, str]:
    return {MODEL_DIR_ENV: str(launch.model_dir), WORKERS_ENV: str(launch.workers)}


def _bentoml_environment(launch: Launch) -> dict[str, str]:
    return _model_environment(launch) | {
        # Its model store and config live under BENTOML_HOME: a scratch directory, not ~.
        "BENTOML_HOME": str(launch.scratch_dir / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        # No access log, as for every server measured (uvicorn's costs about 30% at low latency).
        "BENTOML_CONFIG_OPTIONS": "api_server.logging.access.enabled=false",
    }


PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer(
            name="naive",
            distribution="fastapi",
            predict_path="/v1/predict",
            ready_path="/readyz",
            concurrency_setup=(
                "`uvicorn --workers N` (N processes on one socket); the `def` endpoint runs in "
                "Starlette's thread pool (up to 40 threads per worker, each calling TensorFlow); "
                "TensorFlow's default threads"
            ),
            command=_module_command("bench.peers.naive_fastapi"),
            environment=_model_environment,
        ),
        Peer(
            name="bentoml",
            distribution="bentoml",
            predict_path="/predict",
            ready_path="/readyz",
            concurrency_setup=(
                "`@bentoml.service(workers=N)` under `bentoml serve` (N worker processes on "
                "one socket); the sync `@bentoml.api` runs one call at a time per worker "
                "(BentoML's default `threads=1`), one text per call (no adaptive batching); its "
                "default metrics on; TensorFlow's default threads"
            ),
            command=_bentoml_command,
            environment=_bentoml_environment,
        ),
        Peer(
            name="litserve",
            distribution="litserve",
            predict_path="/predict",
            ready_path="/health",
            concurrency_setup=(
                "`LitServer(accelerator='cpu', workers_per_device=N)`: N inference worker "
                "processes fed through multiprocessing queues by N uvicorn API server processes "
                "(the default `num_api_servers`), one text per call (default "
                "`max_batch_size=1`); TensorFlow's default threads"
            ),
            command=_module_command("bench.peers.litserve_api"),
            environment=_model_environment,
        ),
    )
}
"""Every peer by name, in the order the report lists them."""


def peer_names(value: str) -> list[str]:
    """``naive,bentoml`` → the peers, refusing unknown names (for the command line)."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in PEERS]
    if unknown or not names:
        raise ValueError(f"unknown peer(s) {unknown or value!r}; choose from {', '.join(PEERS)}")
    return names
