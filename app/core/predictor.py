"""One loaded, verified and warmed SavedModel version.

The SavedModel and its card (``contract``) are the whole interface with training: the graph
does its own preprocessing, and the card's recorded samples let us prove at load time that
this export computes what training measured. A version that can't prove it is never served.

Each version carries its own rules: the label rule (``labels_for``, the card's decision
threshold) and its signatures (``signature``, ``signature_defs``).

A version runs in an inline session (``app.core.inline_session``: its graph on the calling
thread, no hand-off to TensorFlow's thread pool per call) unless its scoring graph has control
flow, which only ``tf.saved_model.load`` can run; either way its signatures take
``text_input(texts)`` and answer arrays.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from app.core.errors import BrokenModelError
from app.core.inline_session import InlineModel, load_saved_model, return_freed_memory
from app.core.input_metrics import ObserverFactory, observed_scoring
from contract import (
    CARD_FILE,
    INPUT_NAME,
    LOGIT_OUTPUT,
    PROBABILITY_OUTPUT,
    SAMPLE_TOLERANCE,
    SCORE_SIGNATURE_NAME,
    SIGNATURE_NAME,
    ModelCard,
    is_version_name,
)

logger = logging.getLogger(__name__)

Probabilities = npt.NDArray[np.float32]
Label = Literal["positive", "negative"]


class Predictor:
    """Scores texts with one model version; safe to call from one thread at a time or many."""

    def __init__(
        self,
        version: int,
        card: ModelCard,
        card_document: dict[str, Any],
        serving_function: Callable[..., Any],
        string_constant: Callable[[Sequence[str]], Any],
        owner: Any = None,
        path: Path | None = None,
    ) -> None:
        self.version = version
        self.version_label = str(version)
        self.card = card
        self.card_document = card_document
        self.decision_threshold = card.decision_threshold
        self._serving_function = serving_function
        self._quiet_function = serving_function  # never observed (shadow copies)
        self._string_constant = string_constant
        # The signature's variables belong to the loaded object: keep it alive with us.
        self._owner = owner
        self.path = path
        self._signature_defs: dict[str, Any] | None = None
        self.memory_bytes: int | None = None
        """Resident memory this version added to the process as it loaded (the registry's
        measurement; None when not measured)."""

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        warmup_batch_sizes: Sequence[int] = (1, 8, 64),
        observe_inputs: ObserverFactory | None = None,
    ) -> Predictor:
        """Load, verify against the card's samples and warm the version in ``path``.

        Raises BrokenModelError for anything wrong with the directory, so a caller can refuse
        the version without knowing TensorFlow's many exception types.

        A version with a ``score`` signature (v3 on) is scored with it: the same probability
        and logit plus input accounting from the same call, which the observer
        ``observe_inputs`` makes for this version receives for every batch once the version is
        verified and warm (the card's samples, the warm-up texts and shadow copies are not
        traffic answered by this version, so they are not observed).
        """
        started = time.perf_counter()
        if not is_version_name(path.name):
            raise BrokenModelError(f"{path.name!r} is not an integer version")
        version = int(path.name)
        card, card_document = _read_card(path)
        if card.version != version:
            # The directory name is the version (TF Serving's rule): it is what responses,
            # metrics and the TF Serving status report, so the card served by /v1/model must
            # say the same. A copied or renamed export keeps its old card; say so once.
            logger.warning(
                "version %d: %s says version %d; the directory name wins",
                version,
                CARD_FILE,
                card.version,
            )
            card = card.model_copy(update={"version": version})
            card_document = {**card_document, "version": version}
        if not (path / "saved_model.pb").is_file():
            raise BrokenModelError(f"version {version}: saved_model.pb is missing")

        try:
            loaded, string_constant = load_saved_model(path)
            serving_function = loaded.signatures[SIGNATURE_NAME]
            score_function = loaded.signatures.get(SCORE_SIGNATURE_NAME)
            if score_function is not None:  # verified below like serving_default would be
                serving_function = score_function
        except Exception as exc:
            raise BrokenModelError(
                f"version {version}: SavedModel failed to load ({type(exc).__name__})"
            ) from exc

        predictor = cls(
            version, card, card_document, serving_function, string_constant, loaded, path
        )
        predictor.verify_samples()
        predictor.warm_up(warmup_batch_sizes)
        return_freed_memory()  # what loading, optimizing and warming allocated for a while
        if score_function is not None and observe_inputs is not None:
            observer = observe_inputs(predictor.version_label)
            predictor._serving_function = observed_scoring(serving_function, observer)
        logger.info(
            "model version %d loaded (%s), verified and warm in %.2fs",
            version,
            "inline session"
            if isinstance(loaded, InlineModel)
            else "eager: its graph has control flow",
            time.perf_counter() - started,
        )
        return predictor

    def signature(self, name: str) -> Callable[..., Any] | None:
        """This version's signature ``name`` (e.g. ``explain``); None if it was not exported."""
        signatures = getattr(self._owner, "signatures", None)
        if signatures is None or name not in signatures:
            return None
        function: Callable[..., Any] = signatures[name]
        return function

    def text_input(self, texts: Sequence[str]) -> Any:
        """``texts`` as this version's signatures take them (their outputs: ``np.asarray``)."""
        return self._string_constant(texts)

    def labels_for(self, probabilities: Sequence[float]) -> list[Label]:
        """The one label rule: positive when the probability reaches the card's threshold."""
        threshold = self.decision_threshold
        return ["positive" if p >= threshold else "negative" for p in probabilities]

    @property
    def signature_defs(self) -> dict[str, Any] | None:
        """The signature_defs once ``read_signature_defs`` has read them, else None."""
        return self._signature_defs

    def read_signature_defs(self) -> dict[str, Any]:
        """Every signature_def of the SavedModel, in the protobuf JSON mapping TF Serving prints
        (read from ``saved_model.pb`` on first use, then kept; blocking: call it in a thread)."""
        if self._signature_defs is None:
            if self.path is None:
                raise BrokenModelError(f"version {self.version}: no SavedModel directory")
            self._signature_defs = _read_signature_defs(self.path)
        return self._signature_defs

    def predict_probabilities(self, texts: Sequence[str]) -> Probabilities:
        """P(positive) for each text, via the concrete serving function (never Keras predict).

        Blocking and CPU-bound: call it from a worker thread, never from the event loop.
        """
        outputs = self._serving_function(**{INPUT_NAME: self._string_constant(texts)})
        probabilities: Probabilities = np.asarray(outputs[PROBABILITY_OUTPUT]).reshape(-1)
        if probabilities.shape[0] != len(texts):
            raise BrokenModelError(
                f"version {self.version}: {probabilities.shape[0]} outputs for {len(texts)} inputs"
            )
        return probabilities

    def predict_scores(self, texts: Sequence[str]) -> Probabilities:
        """``[N, 2]`` float32 rows of (probability, logit), from one call of the signature.

        Every route answers from one call of this (the protocol routes answer both outputs),
        made by the micro-batcher's thread; ``predict_probabilities`` serves the load-time
        replay and warm-up.
        """
        return self._scores(self._serving_function, texts)

    def predict_scores_unobserved(self, texts: Sequence[str]) -> Probabilities:
        """``predict_scores`` without feeding the input metrics: for shadow copies, which this
        version scores for comparison but never answers."""
        return self._scores(self._quiet_function, texts)

    def _scores(self, function: Callable[..., Any], texts: Sequence[str]) -> Probabilities:
        outputs = function(**{INPUT_NAME: self._string_constant(texts)})
        probabilities = np.asarray(outputs[PROBABILITY_OUTPUT]).reshape(-1)
        logits = np.asarray(outputs[LOGIT_OUTPUT]).reshape(-1)
        if probabilities.shape[0] != len(texts) or logits.shape[0] != len(texts):
            raise BrokenModelError(
                f"version {self.version}: {probabilities.shape[0]} outputs for {len(texts)} inputs"
            )
        scores: Probabilities = np.stack([probabilities, logits], axis=1).astype(np.float32)
        return scores

    def verify_samples(self) -> None:
        """Replay the card's recorded samples; a mismatch means a broken or foreign export."""
        samples = self.card.samples
        texts = [sample.text for sample in samples]
        expected = np.array([sample.probability for sample in samples])
        if not texts:
            raise BrokenModelError(f"version {self.version}: the card records no samples")
        try:
            actual = self.predict_probabilities(texts).astype(np.float64)
        except BrokenModelError:
            raise
        except Exception as exc:
            raise BrokenModelError(
                f"version {self.version}: serving function failed ({type(exc).__name__})"
            ) from exc
        worst = float(np.max(np.abs(actual - expected)))
        if not worst <= SAMPLE_TOLERANCE:
            raise BrokenModelError(
                f"version {self.version}: sample replay differs by {worst:.3g} "
                f"(tolerance {SAMPLE_TOLERANCE})"
            )

    def warm_up(self, batch_sizes: Sequence[int]) -> None:
        """Run a few calls so the first real requests don't pay one-time initialization."""
        text = self.card.samples[0].text
        try:
            for size in batch_sizes:
                self.predict_probabilities([text] * size)
        except Exception as exc:
            raise BrokenModelError(
                f"version {self.version}: warm-up failed ({type(exc).__name__})"
            ) from exc


def _read_card(path: Path) -> tuple[ModelCard, dict[str, Any]]:
    card_path = path / CARD_FILE
    try:
        document = json.loads(card_path.read_bytes())
        if not isinstance(document, dict):
            raise ValueError("card is not a JSON object")
        card = ModelCard.model_validate(document)
    except FileNotFoundError as exc:
        raise BrokenModelError(f"{path.name}: {CARD_FILE} is missing") from exc
    except (ValueError, ValidationError) as exc:
        raise BrokenModelError(f"{path.name}: {CARD_FILE} is invalid") from exc
    return card, document


def _read_signature_defs(version_dir: Path) -> dict[str, Any]:
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2  # deferred: TensorFlow is heavy

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    return {
        name: json_format.MessageToDict(
            signature,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        for name, signature in saved_model.meta_graphs[0].signature_def.items()
    }
