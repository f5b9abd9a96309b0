"""The cost-growth plot of `python -m bench.growth`: two log-log panels in one PNG.

Left, ms per request against characters per text (a line per protocol and batch size): a
slope of 1 means the time grows as the text does. Right, ms per text against texts per
request (a line per protocol and text length): how much batching saves per text.

Drawn on a bare matplotlib ``Figure`` (the Agg canvas), never pyplot: no global state, no
display needed, safe inside a test process.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

if TYPE_CHECKING:
    from bench.growth import CellResult

_LINE_STYLES = {"rest": "-", "grpc": "--"}
_MARKERS = ("o", "s", "^", "D", "v", "P")


def plot_growth(results: Sequence[CellResult], path: Path, title: str) -> None:
    """Write the plot of `results` to `path` (PNG; parent directories are created)."""
    protocols = list(dict.fromkeys(result.cell.protocol for result in results))
    batch_sizes = sorted({result.cell.batch_size for result in results})
    lengths = sorted({result.cell.chars for result in results})
    by_cell = {
        (result.cell.protocol, result.cell.batch_size, result.cell.chars): result
        for result in results
    }
    figure = Figure(figsize=(12, 5), layout="constrained")
    by_length, by_batch = figure.subplots(1, 2)
    for protocol in protocols:
        style = _LINE_STYLES.get(protocol, ":")
        for index, batch_size in enumerate(batch_sizes):
            by_length.plot(
                lengths,
                [by_cell[protocol, batch_size, chars].ms_per_request for chars in lengths],
                linestyle=style,
                marker=_MARKERS[index % len(_MARKERS)],
                color=f"C{index}",
                label=f"{protocol}, {batch_size} text(s) per request",
            )
        for index, chars in enumerate(lengths):
            by_batch.plot(
                batch_sizes,
                [by_cell[protocol, batch_size, chars].ms_per_text for batch_size in batch_sizes],
                linestyle=style,
                marker=_MARKERS[index % len(_MARKERS)],
                color=f"C{index + len(batch_sizes)}",
                label=f"{protocol}, {chars:,} characters",
            )
    by_length.set(
        xscale="log",
        yscale="log",
        xlabel="characters per text",
        ylabel="ms per request (median)",
        title="Time per request by text length",
    )
    by_batch.set(
        xscale="log",
        yscale="log",
        xlabel="texts per request",
        ylabel="ms per text (median request / texts)",
        title="Time per text by batch size",
    )
    for axes in (by_length, by_batch):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle(title, fontsize="medium")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
