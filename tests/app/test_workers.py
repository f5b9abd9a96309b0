"""Which CPU each worker is bound to (``app.workers.worker_cpus``); the e2e workers test
checks the binding on real worker processes."""

from __future__ import annotations

import pytest

from app.settings import WorkerCpuAffinity
from app.workers import worker_cpus


def test_each_worker_gets_a_cpu_of_its_own_when_the_process_has_exactly_that_many() -> None:
    assert worker_cpus("auto", 2, {5, 3}) == [3, 5]
    assert worker_cpus("auto", 4, {0, 1, 2, 3}) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("affinity", "workers", "allowed"),
    [
        ("off", 2, {0, 1}),  # the operator said no
        ("auto", 2, {0, 1, 2, 3}),  # spare CPUs: a busy worker may borrow one
        ("auto", 4, {0, 1}),  # more workers than CPUs: they must share
        ("auto", 1, {0}),  # one process: nothing to place
        ("auto", 2, set()),  # the mask can't be read here
    ],
)
def test_workers_stay_unbound_otherwise(
    affinity: WorkerCpuAffinity, workers: int, allowed: set[int]
) -> None:
    assert worker_cpus(affinity, workers, allowed) == [None] * workers
