"""Settings is the one home of every default; the files that restate one are checked by value.

The README's table is generated (``python -m app.settings``), ``.env.example`` shows the
defaults in comments, and the Kubernetes ConfigMap sets them explicitly: each of these fails
here as soon as a value drifts from ``app.settings.Settings``.
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
    assert configuration_table() in readme, "regenerate it: .venv/bin/python -m app.settings"


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
