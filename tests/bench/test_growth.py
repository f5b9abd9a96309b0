"""bench.growth measures the real shipped model over REST and gRPC and reports every cell.

The figures themselves are not checked (a benchmark, not a timed test): the run must answer
every cell, print both tables and write a PNG, and refuse to report when a cell is not
answered with success.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.growth import Cell, CellResult, main, parse_options, render, texts_of_length
from tests.paths import REPO_ROOT, SHIPPED_MODEL_BASE

ARCHIVE = REPO_ROOT.parent / "shared" / "datasets" / "aclImdb_labelled.tar.gz"
REVIEWS = ["A fine film.", "Dreadful acting, dull plot.", "I loved every minute of it!"]


def test_texts_have_the_exact_length_and_start_at_different_reviews() -> None:
    for chars in (1, 10, 100):
        texts = texts_of_length(REVIEWS, chars, count=4)
        assert [len(text) for text in texts] == [chars] * 4
        assert all(text.strip() for text in texts)
    assert texts_of_length(REVIEWS, 5, count=4) == ["A fin", "Dread", "I lov", "A fin"]
    long_text = texts_of_length(REVIEWS, 60, count=1)[0]
    assert long_text.startswith("A fine film. Dreadful acting, dull plot. I loved")


def test_render_states_growth_against_the_shortest_text_and_one_text() -> None:
    options = parse_options(["--lengths", "10,100", "--batch-sizes", "1,4", "--protocols", "rest"])
    results = [
        CellResult(Cell("rest", 1, 10), [1.0, 2.0, 3.0]),
        CellResult(Cell("rest", 1, 100), [4.0]),
        CellResult(Cell("rest", 4, 10), [2.0]),
        CellResult(Cell("rest", 4, 100), [8.0]),
    ]
    report = render(options, results, "context")
    # 100 characters, one text: 4 ms against 2 ms for 10 characters; per text 4 ms vs itself.
    assert "| rest | /v1/predict | 1 | 100 | 1 | 4.00 | 4.000 | 0.00 | 2.00 | 1.00 |" in report
    # Four texts of 100 characters: 8 ms, 2 ms per text, half the single text's 4 ms.
    batch_row = "| rest | /v1/predict/batch | 4 | 100 | 1 | 8.00 | 2.000 | 0.00 | 4.00 | 0.50 |"
    assert batch_row in report
    assert "| rest | 4 | 2.00 | 8.00 |" in report


def _arguments(plot: Path, *extra: str) -> list[str]:
    return [
        "--model-base",
        str(SHIPPED_MODEL_BASE),
        "--lengths",
        "10,100",
        "--batch-sizes",
        "1,4",
        "--reviews",
        "8",
        "--rounds",
        "1",
        "--requests",
        "2",
        "--cell-seconds",
        "2",
        "--warmup-requests",
        "1",
        "--service-env",
        "SENTIMENT_WORKERS=1",
        "--plot",
        str(plot),
        *extra,
    ]


@pytest.mark.e2e
def test_growth_against_the_shipped_model_prints_tables_and_writes_a_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not ARCHIVE.exists():
        pytest.skip(f"the IMDB archive is not at {ARCHIVE}")
    plot = tmp_path / "plots" / "growth.png"
    assert main(_arguments(plot)) == 0
    report = capsys.readouterr().out
    for protocol, endpoints in (("rest", ("/v1/predict", "/v1/predict/batch")), ("grpc", ())):
        for batch_size in (1, 4):
            for chars in (10, 100):
                endpoint = endpoints[batch_size > 1] if endpoints else "ModelInfer"
                row = re.search(
                    rf"^\| {protocol} \| {re.escape(endpoint)} \| {batch_size} \| {chars} "
                    r"\| (\d+) \| ([0-9.]+) \| ([0-9.]+) \|",
                    report,
                    re.MULTILINE,
                )
                assert row is not None, (protocol, batch_size, chars, report)
                assert int(row[1]) >= 1 and float(row[2]) > 0 and float(row[3]) > 0
        assert re.search(rf"^\| {protocol} \| 4 \| [0-9.]+ \| [0-9.]+ \|$", report, re.MULTILINE)
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert plot.stat().st_size > 10_000


@pytest.mark.e2e
def test_growth_refuses_to_report_when_a_cell_is_not_answered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not ARCHIVE.exists():
        pytest.skip(f"the IMDB archive is not at {ARCHIVE}")
    plot = tmp_path / "growth.png"
    arguments = _arguments(plot, "--service-env", "SENTIMENT_MAX_TEXT_CHARS=50")
    assert main(arguments) == 2  # 100 characters: 422 over REST, INVALID_ARGUMENT over gRPC
    assert "## Cost growth" not in capsys.readouterr().out
    assert not plot.exists()
