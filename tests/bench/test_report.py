"""The benchmark's arithmetic: the model-bound limit the service is measured against."""

from __future__ import annotations

import pytest

from bench.report import model_bound_rps


def test_the_issue_example() -> None:
    # 2 cores, ceiling 18,514 req/s, 0.076 ms of model CPU per text: about 10,900 req/s.
    # 2 / (2 / 18,514 + 0.000076) = 10,868
    assert model_bound_rps(2, 18_514, 0.076) == pytest.approx(10_868, abs=1)


def test_a_free_model_leaves_the_ceiling_and_a_costly_one_dominates() -> None:
    assert model_bound_rps(2, 10_000, 0.0) == pytest.approx(10_000)
    assert model_bound_rps(1, 1e12, 1.0) == pytest.approx(1_000)
    assert model_bound_rps(4, 8_000, 0.5) < model_bound_rps(4, 8_000, 0.25)


@pytest.mark.parametrize(("cores", "ceiling", "cost"), [(0, 1.0, 0.1), (2, 0.0, 0.1), (2, 1, -1)])
def test_refuses_meaningless_inputs(cores: int, ceiling: float, cost: float) -> None:
    with pytest.raises(ValueError):
        model_bound_rps(cores, ceiling, cost)
