"""The predictor's flat signature call answers exactly like the signature, or is not used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from app.core.predictor import Predictor, _flat_or_signature_call, flat_signature_call
from contract import INPUT_NAME

TEXTS = ["A wonderful film.", "Dreadful, boring and far too long.", "not bad at all"]


def test_the_flat_call_gives_every_output_of_the_signature(source_version_dir: Path) -> None:
    predictor = Predictor.load(source_version_dir)
    owner: Any = predictor._owner
    for name in owner.signatures:
        signature = owner.signatures[name]
        fast = flat_signature_call(signature)
        assert fast is not None, name
        text = predictor._string_constant(TEXTS)
        expected = signature(**{INPUT_NAME: text})
        actual = fast(**{INPUT_NAME: text})
        assert set(actual) == set(expected)
        for output in expected:
            np.testing.assert_array_equal(actual[output].numpy(), expected[output].numpy())


def test_a_signature_without_the_flat_call_is_used_as_it_is() -> None:
    def plain(**inputs: Any) -> dict[str, Any]:
        return {}

    assert flat_signature_call(plain) is None
    assert _flat_or_signature_call(plain, probe=None) is plain


class _Tensor:
    def __init__(self, value: float) -> None:
        self.value = np.array([value])

    def numpy(self) -> Any:
        return self.value


def test_a_flat_call_that_answers_differently_is_not_used() -> None:
    class Liar:
        structured_outputs: dict[str, Any] = {"probability": None}  # noqa: RUF012
        structured_input_signature = ((), {INPUT_NAME: None})
        captured_inputs: list[Any] = []  # noqa: RUF012

        def __call__(self, **inputs: Any) -> dict[str, Any]:
            return {"probability": _Tensor(0.25)}

        def _call_flat(self, args: list[Any], captured: list[Any]) -> dict[str, Any]:
            return {"probability": _Tensor(0.75)}

    liar = Liar()
    assert _flat_or_signature_call(liar, probe="text") is liar
