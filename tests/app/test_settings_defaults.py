"""Settings is the one home of every default; the files that restate one are checked by value.

The README's table is generated (``python -m app.settings``), ``.env.example`` shows the
defaults in comments, the Kubernetes ConfigMap sets them explicitly, and the README and docs/
mention some in prose as `` `SENTIMENT_X` (default ...) ``: each of these fails here as soon
as a value drifts from ``app.settings.Settings``.
"""

from __future__ import annotations

import re

import pytest
import yaml

from app.settings import Settings, configuration_table, differs_from_default, env_name
from tests.paths import REPO_ROOT

FIELD_BY_ENV = {env_name(field): field for field in Settings.model_fields}
# What the Kubernetes deployment sets on purpose (the image's layout and bind address).
DEPLOYMENT_OVERRIDES = {"SENTIMENT_MODEL_BASE_PATH", "SENTIMENT_HOST"}


def _drifted(values: dict[str, str]) -> dict[str, str]:
    return {
        name: text
        for name, text in values.items()
        if differs_from_default(FIELD_BY_ENV[name], text)
    }


def test_readme_configuration_table_is_generated_from_settings() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    assert configuration_table() in section, "regenerate it: .venv/bin/python -m app.settings"


# `SENTIMENT_X` (value[ unit][;,)]...: a default restated in prose.
RESTATED_DEFAULT = re.compile(
    r"`(?P<name>SENTIMENT_[A-Z_]+)` \("
    r"(?:`(?P<text>[^`]+)`|(?P<number>[\d.,]+)(?: (?P<unit>s|KiB|MiB))?)[;,)]"
)
UNIT_FACTOR = {None: 1, "s": 1, "KiB": 1024, "MiB": 1024 * 1024}
DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def _stated_value(match: re.Match[str]) -> str:
    if match["text"] is not None:
        return match["text"]
    number = float(match["number"].replace(",", "")) * UNIT_FACTOR[match["unit"]]
    return str(int(number)) if number.is_integer() else str(number)


def test_defaults_restated_in_the_readme_and_docs_are_the_settings_defaults() -> None:
    stated = [
        (document.name, match["name"], _stated_value(match))
        for document in DOCUMENTS
        for match in RESTATED_DEFAULT.finditer(document.read_text())
    ]
    assert len(stated) >= 10
    unknown = [entry for entry in stated if entry[1] not in FIELD_BY_ENV]
    assert unknown == []
    drifted = [entry for entry in stated if differs_from_default(FIELD_BY_ENV[entry[1]], entry[2])]
    assert drifted == []


def test_env_example_shows_the_defaults() -> None:
    lines = (REPO_ROOT / ".env.example").read_text().splitlines()
    shown = dict(
        match.groups()
        for line in lines
        if (match := re.fullmatch(r"#\s*(SENTIMENT_[A-Z_]+)=(\S*).*", line))
    )
    with_defaults = {  # SENTIMENT_IMAGE and the like are compose's, not settings
        name: text
        for name, text in shown.items()
        if name in FIELD_BY_ENV and Settings.model_fields[FIELD_BY_ENV[name]].default is not None
    }
    assert len(with_defaults) >= 10
    assert _drifted(with_defaults) == {}


def test_configmap_sets_the_defaults_except_the_deployments_own() -> None:
    configmap = yaml.safe_load((REPO_ROOT / "deploy" / "k8s" / "configmap.yaml").read_text())
    data: dict[str, str] = configmap["data"]
    assert set(data) <= set(FIELD_BY_ENV)
    assert set(_drifted(data)) == DEPLOYMENT_OVERRIDES


@pytest.mark.parametrize(("text", "differs"), [("0", False), ("0.0", False), ("5", True)])
def test_values_are_compared_parsed_not_as_text(text: str, differs: bool) -> None:
    assert differs_from_default("max_batch_wait_ms", text) is differs
