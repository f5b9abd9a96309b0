"""In-process throughput of the SavedModel's serving function: the batch endpoint's yardstick.

The batch endpoint can at best approach what the model itself does with a batch of the same
size in the same machine, without HTTP, JSON or queueing. This loads the SavedModel exactly as
the contract says (`tf.saved_model.load`, signature `serving_default`, keyword input `text`) and
times repeated calls. It runs in its own process (see `bench.__main__`) so TensorFlow's
threads and memory never mix with the load client or the servers' measurements.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class InProcessResult:
    """Texts/s of the serving function per timed run; the median is the figure quoted."""

    batch_size: int
    texts_per_s_runs: list[float]

    @property
    def median_texts_per_s(self) -> float:
        return statistics.median(self.texts_per_s_runs)


def newest_version_dir(model_base: Path) -> Path:
    """The highest integer version directory under a TF Serving style model base."""
    versions = [entry for entry in model_base.iterdir() if entry.is_dir() and entry.name.isdigit()]
    if not versions:
        raise FileNotFoundError(f"no integer version directory under {model_base}")
    return max(versions, key=lambda entry: int(entry.name))


def measure_serving_throughput(
    version_dir: Path, texts: Sequence[str], batch_size: int, runs: int = 5, calls_per_run: int = 10
) -> InProcessResult:
    """Median-ready texts/s of `serving_default` on batches of `batch_size` real texts."""
    import tensorflow as tf

    serving = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    batches = [
        tf.constant([texts[(start + offset) % len(texts)] for offset in range(batch_size)])
        for start in range(0, batch_size * calls_per_run, batch_size)
    ]
    for batch in batches[:3]:  # warm-up: first calls trace and allocate
        serving(text=batch)["probability"].numpy()
    runs_texts_per_s = []
    for _ in range(runs):
        started = time.perf_counter()
        for batch in batches:
            serving(text=batch)["probability"].numpy()
        elapsed = time.perf_counter() - started
        runs_texts_per_s.append(batch_size * len(batches) / elapsed)
    return InProcessResult(batch_size=batch_size, texts_per_s_runs=runs_texts_per_s)
