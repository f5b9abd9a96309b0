"""What one training run is asked to do, grouped by concern: `RunConfig` and its parts.

The command line (`training.cli`) builds one; `training.run.run` carries it out; the card
records it. The model's own knobs are `training.model.Hyperparameters`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from training import mixing
from training.behavioural import BEHAVIOUR_DIR
from training.gate import GateSettings
from training.model import DEFAULT_PRESET, PRESETS, Hyperparameters

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "sentiment-service"
DEFAULT_OUTPUT_DIR = Path("model")
DEFAULT_MODEL_NAME = "sentiment"
# Each preset's data when no --mix or --data is given (training/mixes/NAME.json).
PRESET_MIXES = {"default": "default", "tutorial": "imdb"}
# The shared datasets beside a checkout of the repository (`../shared/datasets`).
SHARED_DATASETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def default_datasets() -> str:
    """Where the registered corpora are looked for: `../shared/datasets` beside the repository
    when it exists, else `datasets` in the working directory."""
    return str(SHARED_DATASETS) if SHARED_DATASETS.is_dir() else "datasets"


@dataclass(frozen=True)
class DataSettings:
    """Which corpora to train and test on (`mix`), where the registered ones are (`datasets`:
    a directory or an http(s) base URL), where downloads are cached, and an optional `limit` of
    about that many rows per corpus (quick runs)."""

    mix: mixing.Mix = field(default_factory=mixing.default_mix)
    datasets: str = field(default_factory=default_datasets)
    cache_dir: Path = DEFAULT_CACHE_DIR
    limit: int | None = None


@dataclass(frozen=True)
class OutputSettings:
    """Versions are published under `base_dir / name / <version>`."""

    base_dir: Path = DEFAULT_OUTPUT_DIR
    name: str = DEFAULT_MODEL_NAME

    @property
    def model_dir(self) -> Path:
        return self.base_dir / self.name


@dataclass(frozen=True)
class ReportSettings:
    """What the run reports besides its metrics: the behavioural sets (a JSON Lines file or a
    directory of them) and how talkative Keras is (0 silent, 2 one line per epoch)."""

    behavioural_sets: Path = BEHAVIOUR_DIR
    verbose: int = 2


@dataclass(frozen=True)
class RunConfig:
    params: Hyperparameters = PRESETS[DEFAULT_PRESET]
    preset: str = DEFAULT_PRESET
    data: DataSettings = field(default_factory=DataSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
