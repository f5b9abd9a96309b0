"""In-process throughput of the SavedModel's serving function: the batch endpoint's yardstick.

The batch endpoint can at best approach what the model itself does with a batch of the same
size in the same machine, without HTTP, JSON or queueing. This loads the SavedModel as the
service does (in an inline session, `app.core.inline_session`, where its graph allows, else
`tf.saved_model.load`) and times repeated calls of the signature the service scores with
(`score` when the version has it, else `serving_default`), with the service's TensorFlow
thread settings (one intra-op and one
inter-op thread by default: one worker's model). It runs in its own process (see
`bench.run`) so TensorFlow's threads and memory never mix with the load client or the
servers' measurements.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contract import (
    INPUT_NAME,
    PROBABILITY_OUTPUT,
    SCORE_SIGNATURE_NAME,
    SIGNATURE_NAME,
    version_dirs,
)


@dataclass(frozen=True)
class InProcessResult:
    """Texts/s of the serving function per timed run; the median is the figure quoted."""

    batch_size: int
    texts_per_s_runs: list[float]
    cpu_ms_per_text_runs: list[float]

    @property
    def median_texts_per_s(self) -> float:
        return statistics.median(self.texts_per_s_runs)

    @property
    def median_cpu_ms_per_text(self) -> float:
        """Process CPU (all TensorFlow threads) per text: robust to a busy machine."""
        return statistics.median(self.cpu_ms_per_text_runs)


def newest_version_dir(model_base: Path) -> Path:
    """The highest version directory under a model base (the one the service serves)."""
    versions = version_dirs(model_base)
    if not versions:
        raise FileNotFoundError(f"no version directory under {model_base}")
    return versions[-1][1]


# The worker process of the benchmark's TensorFlow pool keeps its loaded model here between
# rounds, so each round times calls rather than a reload. This is the benchmark's own process,
# never the service's.
_SERVING_FUNCTIONS: dict[tuple[Path, bool], Any] = {}


def configure_threads(intra_op_threads: int, inter_op_threads: int) -> None:
    """Give this process the service's TensorFlow thread settings (0: TensorFlow's default).

    The pool's initializer: it must run before TensorFlow's runtime starts.
    """
    import tensorflow as tf

    if intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
    if inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)


def load_serving_function(version_dir: Path, eager: bool = False) -> str:
    """Load the SavedModel once in this process (call in the worker before timing).

    Returns the name of the signature timed: the one the service scores with. ``eager``
    loads it with ``tf.saved_model.load`` even where the service would not (the way it was
    served before the inline session, for comparison).
    """
    key = (version_dir, eager)
    if key not in _SERVING_FUNCTIONS:
        from app.core.inline_session import load_saved_model

        loaded, as_input = load_saved_model(version_dir, eager=eager)
        name = SCORE_SIGNATURE_NAME if SCORE_SIGNATURE_NAME in loaded.signatures else SIGNATURE_NAME
        # Keep the loaded object alive: the signature's variables belong to it.
        _SERVING_FUNCTIONS[key] = (loaded, loaded.signatures[name], name, as_input)
    signature_name: str = _SERVING_FUNCTIONS[key][2]
    return signature_name


def measure_serving_throughput(
    version_dir: Path,
    texts: Sequence[str],
    batch_size: int,
    runs: int = 5,
    run_seconds: float = 0.5,
    distinct_batches: int = 8,
    eager: bool = False,
) -> InProcessResult:
    """Texts/s of the service's signature on batches of `batch_size` real texts, per run.

    Each run lasts about `run_seconds` (as long as an HTTP round), so a lucky quiet moment on
    a shared machine cannot flatter the in-process figure.
    """
    load_serving_function(version_dir, eager)
    _, serving, _, as_input = _SERVING_FUNCTIONS[(version_dir, eager)]
    batches = [
        as_input([texts[(start + offset) % len(texts)] for offset in range(batch_size)])
        for start in range(0, batch_size * distinct_batches, batch_size)
    ]
    for batch in batches[:3]:  # warm-up: first calls trace and allocate
        np.asarray(serving(**{INPUT_NAME: batch})[PROBABILITY_OUTPUT])
    runs_texts_per_s = []
    runs_cpu_ms_per_text = []
    for _ in range(runs):
        calls = 0
        cpu_started = time.process_time()
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < run_seconds:
            np.asarray(serving(**{INPUT_NAME: batches[calls % len(batches)]})[PROBABILITY_OUTPUT])
            calls += 1
        runs_texts_per_s.append(batch_size * calls / elapsed)
        runs_cpu_ms_per_text.append(
            1000.0 * (time.process_time() - cpu_started) / (batch_size * calls)
        )
    return InProcessResult(
        batch_size=batch_size,
        texts_per_s_runs=runs_texts_per_s,
        cpu_ms_per_text_runs=runs_cpu_ms_per_text,
    )
