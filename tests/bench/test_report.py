"""The benchmark's arithmetic and report: the model-bound limit, the targets, the peer rows."""

from __future__ import annotations

import pytest

from bench.inprocess import InProcessResult
from bench.loadclient import LoadResult
from bench.measure import Measured, steady
from bench.options import parse_options
from bench.report import model_bound_rps, render
from bench.run import PeerResults, Results, VersionCosts


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


# The report's lines, from figures made up for the purpose (the arithmetic, not a run).


def _measured(rate: float, p50_ms: float, statuses: dict[int, int] | None = None) -> Measured:
    counts = statuses or {200: 100}
    load = LoadResult(
        concurrency=1,
        completed=sum(counts.values()),
        elapsed_s=1.0,
        latencies_s=[],
        status_counts=counts,
        timeouts=0,
        errors=0,
        client_cpu_s=0.0,
        reported_percentiles_ms={50.0: p50_ms, 99.0: 2 * p50_ms},
        reported_requests_per_s=rate,
    )
    return Measured(load, [rate], [p50_ms], [2 * p50_ms], 1.0, 0.5, 1.0)


def _results(
    c1_p50_ms: float = 1.0,
    version_costs: VersionCosts | None = None,
    peers: PeerResults | None = None,
    batch_statuses: dict[int, int] | None = None,
) -> Results:
    # A free model (0 ms per text): the model-bound limit is the ceiling's 10,000 req/s on any
    # number of cores.
    return Results(
        single={
            1: (_measured(900, c1_p50_ms), _measured(4_000, 0.5)),
            64: (_measured(9_500, 9.0), _measured(10_000, 5.0)),
        },
        bare={1: _measured(1_000, 0.8), 64: _measured(9_800, 8.0)},
        batch={8: _measured(90, 80.0, batch_statuses)},
        inprocess=InProcessResult(256, [12_000.0], [0.08]),
        model_cost=InProcessResult(64, [20_000.0], [0.0]),
        signature="score",
        version="8",
        workers=2,
        client="wrk",
        overload=_measured(5_000, 100.0, {200: 60, 429: 40}),
        overload_rss_mib=(1000.0, 1001.0, 1002.0),
        text_count=400,
        median_chars=700,
        load_average="1.00 / 1.00 / 1.00",
        version_costs=version_costs,
        peers=peers,
    )


def _rows(report: str) -> dict[str, tuple[str, str]]:
    """The Targets table: target -> (measured, result)."""
    rows = {}
    for line in report.split("### Targets")[1].splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 3 and cells[2] in ("PASS", "MISS"):
            rows[cells[0]] = (cells[1], cells[2])
    return rows


OPTIONS = parse_options(["--compare-version", "none"])
BOUND = "c=64: service req/s ≥ 0.9 x the model-bound limit"
LATENCY = "c=1: service p50 ≤ ceiling p50 + 0.6 ms"


def cost_target(default: str, older: str) -> str:
    return (
        f"serving cost per text, version {default} / version {older} (in process, batch 64, "
        "rounds alternating) ≤ 0.6 x"
    )


COST = cost_target("8", "7")
ERRORS = "no errors: every single-text and batch request to the service answered 200"


def test_the_issue_targets_pass_and_miss_by_their_thresholds() -> None:
    costs = VersionCosts("8", "7", [0.05, 0.048, 0.06], [0.1, 0.1, 0.1])
    report, all_met = render(OPTIONS, _results(c1_p50_ms=1.0, version_costs=costs))
    rows = _rows(report)
    assert rows[BOUND] == ("9,500 / 10,000 = 0.95 x", "PASS")
    assert rows[LATENCY] == ("1.00 ms vs 0.50 ms (+0.50 ms)", "PASS")
    assert rows[COST] == ("0.0500 / 0.1000 ms = 0.50 x (median of 3 per-round ratios)", "PASS")
    assert rows[ERRORS][1] == "PASS"
    assert "same-worker ceiling" not in "".join(rows), "no longer a target (issue 27)"
    assert all_met

    slower = VersionCosts("8", "7", [0.07, 0.07, 0.07], [0.1, 0.1, 0.1])
    report, all_met = render(
        OPTIONS, _results(c1_p50_ms=1.2, version_costs=slower, batch_statuses={200: 99, 503: 1})
    )
    rows = _rows(report)
    assert rows[LATENCY] == ("1.20 ms vs 0.50 ms (+0.70 ms)", "MISS")
    assert rows[COST][1] == "MISS" and "0.70 x" in rows[COST][0]
    assert rows[ERRORS] == ("300 answered; non-2xx 1, timeouts 0, connection errors 0", "MISS")
    assert not all_met


def test_the_default_version_against_itself_is_a_miss_without_measuring() -> None:
    report, _ = render(OPTIONS, _results(version_costs=VersionCosts("7", "7", [], [])))
    assert _rows(report)[cost_target("7", "7")] == (
        "the default version is version 7 itself: 1.00 x",
        "MISS",
    )


def test_peer_rows_give_our_ratio_to_each_peer_and_who_has_the_lowest_p50() -> None:
    peers = PeerResults(
        service={64: _measured(6_000, 10.0), 1: _measured(1_000, 0.9)},
        peers={
            "naive": {64: _measured(1_500, 40.0), 1: _measured(600, 1.2)},
            "bentoml": {64: _measured(2_500, 25.0), 1: _measured(1_100, 0.8)},
        },
        versions={"fastapi": "0.1", "bentoml": "1.4.40", "tensorflow-cpu": "2.21.0"},
        service_tensorflow="2.21.0",
        python="/peers/bin/python",
        largest_difference={"naive": 0.0, "bentoml": 1e-7},
    )
    report, all_met = render(OPTIONS, _results(peers=peers))
    rows = _rows(report)
    assert rows["peers, c=64: ours ≥ 3 x naive (fastapi 0.1)"] == ("6,000 / 1,500 = 4.00 x", "PASS")
    assert rows["peers, c=64: ours ≥ 3 x bentoml (bentoml 1.4.40)"] == (
        "6,000 / 2,500 = 2.40 x",
        "MISS",
    )
    assert rows["peers, c=1: ours has the lowest p50"] == (
        "ours 0.90 ms; naive 1.20, bentoml 0.80 ms",
        "MISS",
    )
    assert not all_met
    table = report.split("### Peers")[1]
    assert "| ours (`python -m app`) | this checkout |" in table
    assert "| naive | fastapi 0.1 |" in table and "| 1,500 | 4.00 | 1.20 | 2.40 |" in table
    assert "| bentoml | bentoml 1.4.40 |" in table and "| 2,500 | 2.40 | 0.80 | 1.60 |" in table
    assert "tensorflow-cpu 2.21.0 in the peers' interpreter, 2.21.0 in the service's" in table


def test_a_warm_up_is_steady_when_two_rounds_agree_within_a_fifth() -> None:
    assert not steady(79.0, 15.0), "a ramp that dips is not steady"
    assert not steady(130.0, 670.0)
    assert steady(700.0, 716.0) and steady(500.0, 500.0) and steady(800.0, 650.0)
    assert not steady(0.0, 0.0), "a server that answers nothing is not warm"


def test_the_bare_server_rows_give_its_share_of_the_bound_and_the_service_against_it() -> None:
    report, _ = render(OPTIONS, _results())
    table = report.split("the bare batching server")[1].split("###")[0]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line[:3] == "| 6"}
    rows |= {line.split("|")[1].strip(): line for line in table.splitlines() if line[:3] == "| 1"}
    # A free model: the bound is the ceiling's rate (10,000 at c=64, 4,000 at c=1).
    assert rows["64"].startswith("| 64 | 9,800 | 8.00 | 16.00 | 0.98 | 0.97 | +1.00 |")
    assert rows["1"].startswith("| 1 | 1,000 | 0.80 | 1.60 | 0.25 | 0.90 | +0.20 |")
