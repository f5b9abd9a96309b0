"""Model versions side by side: `python -m bench.versions model/sentiment/1 model/sentiment/2 ...`.

The serving cost of a model is a property of its exported graph, so a new version must be timed
beside the one it replaces, in one process and one run (this machine's speed drifts between
runs): in-process CPU per text on batches of real IMDB test reviews, with the service's
TensorFlow threads (one), of the signature the service calls (`score` where it exists). Rounds
alternate between the versions. `--eager` adds each version loaded with `tf.saved_model.load`
(how the service ran every version before `app.core.inline_session`), as rows of their own.
"""

from __future__ import annotations

import argparse
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path

from bench import REPO_ROOT
from bench.inprocess import configure_threads, load_serving_function, measure_serving_throughput
from bench.texts import DEFAULT_DATA, load_review_texts

logger = logging.getLogger("bench.versions")


Entry = tuple[Path, bool]
"""A version directory, and whether it is loaded eagerly instead of as the service would."""


def compare(
    entries: Sequence[Entry],
    texts: Sequence[str],
    batch_size: int,
    rounds: int,
    runs: int = 3,
    run_seconds: float = 0.5,
) -> dict[Entry, list[float]]:
    """CPU ms per text for each entry, one figure (the median of `runs`) per round, rounds
    alternating. The caller sets the process's TensorFlow threads first (see `main`)."""
    figures: dict[Entry, list[float]] = {entry: [] for entry in entries}
    for _ in range(rounds):
        for path, eager in entries:
            result = measure_serving_throughput(
                path, texts, batch_size, runs, run_seconds, eager=eager
            )
            figures[(path, eager)].append(result.median_cpu_ms_per_text)
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.versions", description=__doc__)
    parser.add_argument("versions", nargs="+", type=Path, help="version directories")
    parser.add_argument("--data", type=Path, default=REPO_ROOT / DEFAULT_DATA)
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per version per round")
    parser.add_argument("--run-seconds", type=float, default=0.5)
    parser.add_argument(
        "--eager", action="store_true", help="also time each version loaded eagerly"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # The service's thread settings, set by the process entry point before TensorFlow starts.
    configure_threads(1, 1)
    texts = load_review_texts(args.data, args.texts)
    entries = [(path, eager) for path in args.versions for eager in (False, True)[: 1 + args.eager]]
    figures = compare(entries, texts, args.batch_size, args.rounds, args.runs, args.run_seconds)
    logger.info(
        "| version | signature | CPU ms per text, batch %d (median) | rounds |", args.batch_size
    )
    logger.info("|---|---|---:|---|")
    first = entries[0]
    for (path, eager), values in figures.items():
        rounds = ", ".join(f"{value:.4f}" for value in values)
        logger.info(
            "| %s | %s | %.4f | %s |",
            _label(path, eager),
            load_serving_function(path, eager),
            statistics.median(values),
            rounds,
        )
    # Each round's ratio to the first version, whose run came just before: machine drift
    # between rounds cancels in it.
    logger.info("")
    logger.info("| version | per-round ratio to %s (median) | rounds |", _label(*first))
    logger.info("|---|---:|---|")
    for (path, eager), values in figures.items():
        ratios = [value / base for value, base in zip(values, figures[first], strict=True)]
        logger.info(
            "| %s | %.3f | %s |",
            _label(path, eager),
            statistics.median(ratios),
            ", ".join(f"{ratio:.3f}" for ratio in ratios),
        )


def _label(path: Path, eager: bool) -> str:
    return f"{path} (eager)" if eager else str(path)


if __name__ == "__main__":
    main()
