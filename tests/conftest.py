"""Command-line options for the whole suite (``pytest_addoption`` must live at the top)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--playground-screenshot",
        metavar="PATH",
        default=None,
        help="also save tests/app/test_playground_browser.py's screenshot to PATH "
        "(the README's: make playground-screenshot)",
    )
