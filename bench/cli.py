"""What the benchmark entries (`bench`, `bench.growth`, `bench.grpc`) share on their command
lines: list and setting arguments, the log format, and the command line printed with the
results so that a table in docs/benchmark.md says how it was made."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence


def configure_logging() -> None:
    """Progress to stderr with timestamps (the results go to stdout)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def positive_ints(value: str) -> list[int]:
    """An argparse type: "1,16,256"."""
    numbers = [int(part) for part in value.split(",") if part.strip()]
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return numbers


def service_setting(pair: str) -> tuple[str, str]:
    """An argparse type: one ``SENTIMENT_NAME=VALUE`` setting for the service under test."""
    key, separator, value = pair.partition("=")
    if not separator or not key.startswith("SENTIMENT_"):
        raise argparse.ArgumentTypeError(f"SENTIMENT_NAME=VALUE, got {pair!r}")
    return key, value


def add_service_env(parser: argparse.ArgumentParser) -> None:
    """``--service-env``, repeatable; ``dict(args.service_env)`` is the service's extra env."""
    parser.add_argument(
        "--service-env",
        action="append",
        type=service_setting,
        default=[],
        metavar="SENTIMENT_X=VALUE",
        help="extra setting for the service (repeatable), e.g. SENTIMENT_WORKERS=1",
    )


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """The command that produced this run, as a reader would type it."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", "-m", module, *arguments])
