"""What one training run is asked to do, grouped by concern: `RunConfig` and its parts.

The command line (`training.cli`) builds one; `training.run.run` carries it out; the card
records it. The model's own knobs are `training.model.Hyperparameters`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from training.behavioural import BEHAVIOUR_DIR
from training.data import IMDB_URL, DataSource
from training.gate import GateSettings
from training.model import DEFAULT_PRESET, PRESETS, Hyperparameters

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "sentiment-service"
DEFAULT_OUTPUT_DIR = Path("model")
DEFAULT_MODEL_NAME = "sentiment"


@dataclass(frozen=True)
class DataSettings:
    """Which labelled texts to train and test on, where downloads are cached, and an optional
    seeded `limit` of train and of test texts (quick runs)."""

    source: DataSource = field(default_factory=lambda: DataSource.at(IMDB_URL))
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
