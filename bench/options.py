"""The benchmark's command line: how hard, how long, and which settings the service gets.

Service settings are not mirrored here: ``--service-env`` passes ``SENTIMENT_*`` variables
through, and everything else is ``app.settings.Settings``' default.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.settings import Settings
from bench import REPO_ROOT
from bench.peers import PEERS, peer_names
from bench.servers import settings_from_env
from bench.texts import DEFAULT_DATA

SHIPPED_MODEL_BASE = REPO_ROOT / "model" / "sentiment"
# Issue 27's reference graph: the default version's serving cost is measured against it.
BASELINE_VERSION = "7"
# `make bench-peers` installs the peers here, apart from the service's venv.
PEERS_VENV_PYTHON = REPO_ROOT / ".venv-peers" / "bin" / "python"


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
    client: str
    wrk_threads: int
    compare_version: Path | None  # an older version directory, or None: no cost ratio
    peers: list[str]  # names in bench.peers.PEERS; empty: no peer mode
    peers_python: str  # the interpreter the peers run in
    peer_warmup_max_s: float  # steady warm-up bound per server and concurrency in peer mode


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
        default=SHIPPED_MODEL_BASE,
        help="model base directory with version directories (default: the shipped model)",
    )
    parser.add_argument("--texts", type=int, default=400, help="how many review texts to use")
    parser.add_argument("--concurrency", type=_int_list, default=[1, 16, 64])
    parser.add_argument(
        "--duration",
        type=float,
        default=6.0,
        help="measured seconds per server and phase (wrk runs whole seconds per round)",
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per phase")
    parser.add_argument("--max-requests", type=int, default=60_000, help="requests per phase")
    parser.add_argument("--batch-size", type=int, default=256)
    # 8 as well as 4: the kernel's SO_REUSEPORT hash put all of 4 connections on one of two
    # workers in two of three rounds (one busy core against a two-worker yardstick).
    parser.add_argument("--batch-concurrency", type=_int_list, default=[1, 4, 8])
    parser.add_argument("--overload-concurrency", type=int, default=512)
    parser.add_argument("--overload-queue-size", type=int, default=64)
    parser.add_argument("--overload-duration", type=float, default=3.0)
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
    parser.add_argument(
        "--client",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load client: wrk when installed (auto), or the raw-socket Python client",
    )
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (-t)")
    parser.add_argument(
        "--compare-version",
        default=None,
        metavar="DIR|none",
        help="an older version directory whose in-process serving cost per text the default "
        f"version's is divided by, in this run (default: version {BASELINE_VERSION} under "
        "--model-base when it exists; 'none' skips it)",
    )
    parser.add_argument(
        "--peers",
        nargs="?",
        const=",".join(PEERS),
        default="",
        metavar="NAMES",
        help="peer mode: also measure other servers of the same model side by side at c=64 "
        f"and c=1 (comma-separated, default all: {', '.join(PEERS)}; `make bench-peers`)",
    )
    parser.add_argument(
        "--peers-python",
        default=None,
        help="the interpreter the peers run in (default: .venv-peers/bin/python when it "
        "exists, else this one)",
    )
    parser.add_argument(
        "--peer-warmup",
        type=float,
        default=20.0,
        help="peer mode: at most this many seconds of 1 s warm-up rounds per server and "
        "concurrency, until its rate stops climbing",
    )
    args = parser.parse_args(argv)
    try:
        peers = peer_names(args.peers) if args.peers else []
    except ValueError as exc:
        parser.error(str(exc))
    return Options(
        data=args.data,
        model_base=args.model_base.resolve(),
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
        client=args.client,
        wrk_threads=max(1, args.wrk_threads),
        compare_version=_compare_version(args.compare_version, args.model_base.resolve()),
        peers=peers,
        # Absolute but not resolved: a venv's python is a symlink out of the venv.
        peers_python=str(Path.cwd() / (args.peers_python or _default_peers_python())),
        peer_warmup_max_s=args.peer_warmup,
    )


def _compare_version(value: str | None, model_base: Path) -> Path | None:
    if value is None:
        baseline = model_base / BASELINE_VERSION
        return baseline if baseline.is_dir() else None
    if value.lower() == "none":
        return None
    path = Path(value).resolve()
    if not path.is_dir():
        raise SystemExit(f"--compare-version: {value} is not a version directory")
    return path


def _default_peers_python() -> str:
    return str(PEERS_VENV_PYTHON) if PEERS_VENV_PYTHON.exists() else sys.executable


def service_settings(options: Options) -> Settings:
    """The settings the service under test runs with: Settings' defaults plus --service-env."""
    return settings_from_env(options.service_env)
