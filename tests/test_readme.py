"""The README stays true: its curl examples get exactly the replies it shows (shipped model)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.paths import REPO_ROOT, SHIPPED_MODEL_BASE

EXAMPLE = re.compile(
    r"\$ curl -s localhost:8000(?P<path>\S+) .*?-d '(?P<body>[^']+)'\n(?P<reply>.+)"
)


# Explanations' numbers (every float in the reply) are compared within this.
EXPLAIN_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def shipped_client() -> Iterator[TestClient]:
    """The app serving model/sentiment as `make serve` does: its newest version is live."""
    settings = Settings(model_base_path=SHIPPED_MODEL_BASE, reload_interval_seconds=0)
    with TestClient(create_app(settings)) as client:
        yield client


def _section(readme: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of any level."""
    after = readme.split(f"\n{heading}\n", 1)[1]
    return re.split(r"\n#{1,6} ", after, maxsplit=1)[0]


def test_quick_start_curl_reply_matches_the_shipped_model(shipped_client: TestClient) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    first_screen = readme.split("\n---\n", 1)[0]
    assert "make serve" in first_screen and "make test" in first_screen
    match = EXAMPLE.search(first_screen)
    assert match, "the README's first screen must show a curl and its literal reply"
    response = shipped_client.post(match["path"], json=json.loads(match["body"]))
    assert response.status_code == 200
    shown, actual = json.loads(match["reply"]), response.json()
    assert actual["label"] == shown["label"]
    assert actual["model_version"] == shown["model_version"]
    assert actual["probability"] == pytest.approx(shown["probability"], abs=1e-6)


def _assert_same(shown: Any, actual: Any, where: str = "reply") -> None:
    """Same structure, keys, strings and booleans; floats within EXPLAIN_TOLERANCE."""
    if isinstance(shown, dict):
        assert isinstance(actual, dict) and actual.keys() == shown.keys(), where
        for key, value in shown.items():
            _assert_same(value, actual[key], f"{where}.{key}")
    elif isinstance(shown, list):
        assert isinstance(actual, list) and len(actual) == len(shown), where
        for index, (value, got) in enumerate(zip(shown, actual, strict=True)):
            _assert_same(value, got, f"{where}[{index}]")
    elif isinstance(shown, float) and not isinstance(actual, bool):
        assert actual == pytest.approx(shown, abs=EXPLAIN_TOLERANCE), where
    else:
        assert type(actual) is type(shown) and actual == shown, where


def test_explanations_curl_reply_matches_the_shipped_model(shipped_client: TestClient) -> None:
    """The Explanations section's curl gets its literal reply, number by number."""
    section = _section((REPO_ROOT / "README.md").read_text(), "### Explanations")
    match = EXAMPLE.search(section)
    assert match, "the Explanations section must show a curl and its literal reply"
    assert match["path"] == "/v1/explain"
    response = shipped_client.post(match["path"], json=json.loads(match["body"]))
    assert response.status_code == 200, response.text
    _assert_same(json.loads(match["reply"]), response.json())


ERROR_ROW = re.compile(r"^\| (?P<status>\d{3}) \| (?P<types>`[^|]+`) \|", re.MULTILINE)


def test_error_table_lists_every_error_type_with_its_status() -> None:
    """The README's error table states what app/errors.py declares, by value."""
    from app.errors import ServiceError

    readme = (REPO_ROOT / "README.md").read_text()
    documented = {
        (int(row["status"]), name.strip("` "))
        for row in ERROR_ROW.finditer(readme)
        for name in row["types"].split("/")
    }
    declared = {(cls.status_code, cls.error_type) for cls in ServiceError.registered}
    assert documented == declared
