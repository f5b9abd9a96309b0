"""`python -m bench`: the service against its HTTP ceiling, side by side, in one run.

Machines are noisy, so every target is a ratio of two figures measured in the same run on the
same machine with the same client and texts:

1. single-text `POST /v1/predict` at concurrency 1, 16 and 64 against the real service and
   against `bench.ceiling` (same framework and validation, constant answer);
2. `POST /v1/predict/batch` with 256 texts beside the SavedModel's own serving function on
   batches of 256, in process;
3. overload: concurrency 512 against a service with a small queue, which must answer only 200
   or 429, never time out, and keep its memory flat;
4. before any server starts, the default version's in-process cost per text against an older
   version's (`--compare-version`, version 7 by default), rounds alternating;
5. with `--peers`, the same model served by a naive FastAPI app, BentoML and LitServe
   (`bench/peers`, run from their own venv: `make bench-peers`), alternating with the service
   at c=64 and c=1.

Modules: `options` (command line), `run` (the phases), `measure` (rounds against one server),
`report` (tables and targets), `servers`, `loadclient`, `ceiling`, `inprocess`, `texts`,
`peers`. Other entries: `bench.growth` (time by text length and batch size, REST and gRPC),
`bench.versions` (versions side by side in process), `bench.ops` (the graph's cost per stage).
The results are written to stdout as Markdown tables for docs/benchmark.md; progress goes to
the log on stderr.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence

from bench.cli import command_line, configure_logging
from bench.options import parse_options
from bench.report import render
from bench.run import run_benchmark

logger = logging.getLogger("bench")


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    options = parse_options(argv)
    started = time.monotonic()
    try:
        results = run_benchmark(options)
    except (RuntimeError, OSError, ValueError) as exc:
        logger.error("benchmark failed: %s", exc)
        return 2
    report, all_met = render(options, results)
    sys.stdout.write(report + "\n")
    command = command_line("bench", argv)
    sys.stdout.write(f"Command: `{command}` ({time.monotonic() - started:.0f} s in total)\n")
    sys.stdout.flush()
    return 1 if options.strict and not all_met else 0


if __name__ == "__main__":
    sys.exit(main())
