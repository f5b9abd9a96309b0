"""The README's first screen stays true: its curl example gets exactly the reply it shows."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.paths import REPO_ROOT, SHIPPED_MODEL_BASE

EXAMPLE = re.compile(
    r"\$ curl -s localhost:8000(?P<path>\S+) .*?-d '(?P<body>[^']+)'\n(?P<reply>.+)"
)


def test_quick_start_curl_reply_matches_the_shipped_model() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    first_screen = readme.split("\n---\n", 1)[0]
    assert "make serve" in first_screen and "make test" in first_screen
    match = EXAMPLE.search(first_screen)
    assert match, "the README's first screen must show a curl and its literal reply"
    settings = Settings(model_base_path=SHIPPED_MODEL_BASE, reload_interval_seconds=0)
    with TestClient(create_app(settings)) as client:
        response = client.post(match["path"], json=json.loads(match["body"]))
    assert response.status_code == 200
    shown, actual = json.loads(match["reply"]), response.json()
    assert actual["label"] == shown["label"]
    assert actual["model_version"] == shown["model_version"]
    assert actual["probability"] == pytest.approx(shown["probability"], abs=1e-6)


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
