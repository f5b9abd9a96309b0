"""The model contract: what a published version directory holds, in one place.

Training writes it and the service reads it, so both import this package and nothing of each
other. A version is an integer directory under ``<base>/<name>/`` (TF Serving's layout) that
holds a SavedModel and ``model_card.json``. Its ``serving_default`` signature takes ``text``
(a 1-D ``tf.string`` tensor of raw texts) and returns ``probability`` (P(positive), float32
``[N, 1]``) and ``logit``; versions exported since v3 also have ``score`` (the same plus input
accounting) and ``explain`` (each unit's share of the logit).
Training builds a version in a hidden ``.tmp-*`` directory and renames it into place when it
is complete, so any other name is never a version.

Importing this module does no I/O and needs neither TensorFlow nor FastAPI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SIGNATURE_NAME = "serving_default"
EXPLAIN_SIGNATURE_NAME = "explain"
# serving_default plus input accounting (token_count, oov_count, truncated) at no extra cost:
# what the service calls when a version has it (v3 on), for its input and drift metrics.
SCORE_SIGNATURE_NAME = "score"
INPUT_NAME = "text"
PROBABILITY_OUTPUT = "probability"
LOGIT_OUTPUT = "logit"
OUTPUT_NAMES = (PROBABILITY_OUTPUT, LOGIT_OUTPUT)
# Input accounting, per text, in `score` and `explain`.
TOKEN_COUNT_OUTPUT = "token_count"  # int64: real units scored (at most the sequence length)
OOV_COUNT_OUTPUT = "oov_count"  # int64: how many of them are out of vocabulary
TRUNCATED_OUTPUT = "truncated"  # bool: units beyond the sequence length were dropped
SCORE_OUTPUT_NAMES = (*OUTPUT_NAMES, TOKEN_COUNT_OUTPUT, OOV_COUNT_OUTPUT, TRUNCATED_OUTPUT)
# `explain`: every text's units concatenated (units, contributions: [total units]) with
# units_per_text [N] to split them, and the per-text terms of the logit [N].
UNITS_OUTPUT = "units"  # string: the unit as scored ("NOT_like", "did not"); "[UNK]" if empty
CONTRIBUTIONS_OUTPUT = "contributions"  # float32: the unit's exact share of the raw logit
UNITS_PER_TEXT_OUTPUT = "units_per_text"  # int64
BIAS_OUTPUT = "bias"  # float32: raw logit = bias + sum of contributions
OOV_SHARE_OUTPUT = "oov_share"  # float32: oov_count / token_count (0 for no units)
TEMPERATURE_OUTPUT = "temperature"  # float32: logit = raw_logit / temperature (T(n), bent)
RAW_LOGIT_OUTPUT = "raw_logit"  # float32: before calibration
EXPLAIN_OUTPUT_NAMES = (
    UNITS_OUTPUT,
    CONTRIBUTIONS_OUTPUT,
    UNITS_PER_TEXT_OUTPUT,
    BIAS_OUTPUT,
    TOKEN_COUNT_OUTPUT,
    TRUNCATED_OUTPUT,
    OOV_COUNT_OUTPUT,
    OOV_SHARE_OUTPUT,
    TEMPERATURE_OUTPUT,
    RAW_LOGIT_OUTPUT,
    LOGIT_OUTPUT,
    PROBABILITY_OUTPUT,
)
CARD_FILE = "model_card.json"
STAGING_PREFIX = ".tmp-"
# How closely a reloaded export must reproduce the probabilities recorded in its card.
SAMPLE_TOLERANCE = 1e-5


def is_version_name(name: str) -> bool:
    """Integer names are versions; staging directories (``.tmp-*``) and the rest are not."""
    return name.isascii() and name.isdigit()


def version_dirs(base_path: Path) -> list[tuple[int, Path]]:
    """The version directories under ``base_path``, oldest first; [] if it does not exist."""
    try:
        entries = list(os.scandir(base_path))
    except OSError:
        return []
    found = [
        (int(entry.name), Path(entry.path))
        for entry in entries
        if is_version_name(entry.name) and entry.is_dir()
    ]
    return sorted(found)


class Sample(BaseModel):
    """A text and the probability the export produced for it, replayed at load time."""

    text: str
    probability: float


class SignatureInfo(BaseModel):
    name: str = SIGNATURE_NAME
    input: str = INPUT_NAME
    outputs: list[str] = Field(default_factory=lambda: list(OUTPUT_NAMES))


class ModelCard(BaseModel):
    """``model_card.json``: written by training next to the SavedModel, read by the service.

    The fields the service relies on are typed; the rest of training's record (data,
    hyperparameters, metrics, baselines, the promotion gate's decision, ...) is kept as
    written (``extra="allow"``) and served as is by ``GET /v1/model``.
    """

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    version: int = Field(ge=0)
    created_at: str | None = None
    preset: str | None = None
    decision_threshold: float = Field(default=0.5, ge=0, le=1)
    samples: list[Sample] = Field(default_factory=list)
    signature: SignatureInfo = Field(default_factory=SignatureInfo)
    # Every signature in the SavedModel; versions before 3 list none and have only the default.
    signatures: list[str] = Field(default_factory=lambda: [SIGNATURE_NAME])
    metrics: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] | None = None
    hyperparameters: dict[str, Any] | None = None
    epochs_trained: int | None = None
    calibration: dict[str, Any] | None = None
    # Added in version 3: the same run's reference baselines, the hand-written behavioural set
    # per kind, and the promotion gate's decision.
    baselines: dict[str, Any] | None = None
    behavioural: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    framework: dict[str, Any] | None = None

    def write(self, version_dir: Path) -> None:
        """Write the card into ``version_dir`` and flush it to disk (publication follows)."""
        with (version_dir / CARD_FILE).open("w", encoding="utf-8") as f:
            f.write(self.model_dump_json(indent=2, exclude_none=False))
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())

    @classmethod
    def read(cls, version_dir: Path) -> ModelCard:
        """Parse ``version_dir``'s card; raises OSError or pydantic's ValidationError."""
        return cls.model_validate_json((version_dir / CARD_FILE).read_bytes())
