"""Fixtures serving the real SavedModel from a per-test copy of the model base directory.

Each test gets its own base directory (a copy of the newest shipped ``model/sentiment``
version) so reload tests can publish versions
into it the way training does: write ``.tmp-*`` then rename to the integer name.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.settings import Settings
from contract import CARD_FILE, STAGING_PREFIX, version_dirs
from tests.paths import SHIPPED_MODEL_BASE


@pytest.fixture(scope="session")
def source_version_dir() -> Path:
    """The newest version of the shipped model."""
    versions = version_dirs(SHIPPED_MODEL_BASE)
    if not versions:
        pytest.fail(f"no model version found under {SHIPPED_MODEL_BASE}")
    return versions[-1][1]


@pytest.fixture(scope="session")
def model_card(source_version_dir: Path) -> dict[str, Any]:
    """The newest shipped card as the raw JSON document training wrote."""
    card: dict[str, Any] = json.loads((source_version_dir / CARD_FILE).read_text())
    return card


@pytest.fixture(scope="session")
def api_samples(model_card: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's samples the API accepts: all but blank texts.

    Cards from v3 on also record the empty text (the model scores it as one ``[UNK]``, and the
    service replays it on load), which the prediction routes refuse with 422 by contract.
    """
    return [sample for sample in model_card["samples"] if sample["text"].strip()]


Publisher = Callable[..., Path]


def publish_version(
    base: Path,
    source: Path,
    version: int,
    mutate: Callable[[Path], None] | None = None,
) -> Path:
    """Publish ``source`` as ``base/<version>`` atomically (copy to .tmp-*, then rename)."""
    staging = base / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    shutil.copytree(source, staging)
    if mutate is not None:
        mutate(staging)
    target = base / str(version)
    staging.rename(target)  # atomic, like training: never a half-written integer dir
    return target


@pytest.fixture
def model_base(tmp_path: Path, source_version_dir: Path) -> Path:
    """A model base directory holding version 1 (a copy of the shipped model)."""
    base = tmp_path / "sentiment"
    base.mkdir()
    publish_version(base, source_version_dir, 1)
    return base


@pytest.fixture
def publish(model_base: Path, source_version_dir: Path) -> Publisher:
    """Publish a copy of the shipped model into ``model_base`` as a given version."""

    def _publish(version: int, mutate: Callable[[Path], None] | None = None) -> Path:
        return publish_version(model_base, source_version_dir, version, mutate)

    return _publish


@pytest.fixture
def make_settings(model_base: Path) -> Callable[..., Settings]:
    """Settings for tests: the per-test model base, no watcher unless asked for, no gRPC
    server unless asked for (on its fixed default port, 8001, every app would share the port,
    SO_REUSEPORT, with a service running on this machine and take some of its connections)."""

    def _make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "model_base_path": model_base,
            "reload_interval_seconds": 0,
            "grpc_port": 0,
        }
        values.update(overrides)
        return Settings(**values)

    return _make


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """The app with its lifespan running (model loaded, verified, warm)."""
    with TestClient(create_app(make_settings())) as test_client:
        yield test_client


def _assert_error(response: Any, status: int, error_type: str) -> dict[str, Any]:
    """The response is the documented error shape with this status and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


def tamper_sample(version_dir: Path) -> None:
    """Shift one recorded sample probability: the export no longer matches its card."""
    card_path = version_dir / CARD_FILE
    card = json.loads(card_path.read_text())
    card["samples"][0]["probability"] = min(1.0, card["samples"][0]["probability"] + 0.01)
    card_path.write_text(json.dumps(card))


def remove_graph(version_dir: Path) -> None:
    """Simulate a half-written version: the graph file never arrived."""
    (version_dir / "saved_model.pb").unlink()


@pytest.fixture(scope="session")
def assert_error() -> Callable[[Any, int, str], dict[str, Any]]:
    """Checker for the one documented error shape, as a fixture (``wait_until`` is imported)."""
    return _assert_error


_BREAKERS: dict[str, Callable[[Path], None]] = {
    "tampered_sample": tamper_sample,
    "missing_graph": remove_graph,
}


@pytest.fixture
def publish_broken(publish: Publisher) -> Callable[[int, str], Path]:
    """Publish a broken copy: 'tampered_sample' or 'missing_graph'."""

    def _publish_broken(version: int, how: str) -> Path:
        return publish(version, _BREAKERS[how])

    return _publish_broken


@pytest.fixture
def publish_into(source_version_dir: Path) -> Callable[..., Path]:
    """Publish the shipped model into any base dir, optionally broken ('tampered_sample', ...)."""

    def _publish_into(base: Path, version: int, how: str | None = None) -> Path:
        return publish_version(base, source_version_dir, version, _BREAKERS[how] if how else None)

    return _publish_into


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass; bounded, for background effects."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def metric_sum(client: TestClient, name: str, **labels: str) -> float:
    """A sample summed over every series that has these labels (so over versions, workers)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def registry_samples(registry: CollectorRegistry, prefix: str = "") -> dict[tuple[str, str], float]:
    """Every sample of ``registry`` whose name starts with ``prefix``, by (name, ``le``): what
    two registries that observed the same values must agree on (``_created`` times aside)."""
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name.startswith(prefix) and not sample.name.endswith("_created")
    }
