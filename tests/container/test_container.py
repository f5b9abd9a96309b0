"""The real image and the real compose stack: build, run, predict, healthcheck, retrain, hot reload.

Everything goes through a container engine (podman, or docker through podman's Docker API), so
these tests are marked ``container`` and skip with the reason when the engine, the base image or
the Docker API is not available (``scripts/container-test.sh`` prepares all three on CI).
Engine calls are wrapped in timeouts: a hung engine must fail the test, not the whole CI job.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from tests.paths import REPO_ROOT, SHIPPED_MODEL_BASE

pytestmark = pytest.mark.container

logger = logging.getLogger(__name__)

SHIPPED_BASE = SHIPPED_MODEL_BASE
# The image ships every version under model/sentiment and serves the highest.
SHIPPED_VERSION = max(int(p.name) for p in SHIPPED_BASE.iterdir() if p.name.isdigit())
SHIPPED_CARD = SHIPPED_BASE / str(SHIPPED_VERSION) / "model_card.json"
RETRAINED_VERSION = SHIPPED_VERSION + 1
BASE_IMAGE = "docker.io/library/python:3.11-slim"
TRANSIENT_ENGINE_ERROR = "write child: broken pipe"
ENGINE_ATTEMPTS = 3
API_IMAGE = "localhost/sentiment-service:container-test"
TRAIN_IMAGE = "localhost/sentiment-service-train:container-test"
# The IMDB archive; CI machines keep it next to the repo (no internet needed).
TRAIN_DATA = REPO_ROOT.parent / "shared" / "datasets" / "aclImdb_labelled.tar.gz"
BUILD_TIMEOUT = 1200.0
ENGINE_TIMEOUT = 120.0
READY_TIMEOUT = 180.0
TRAIN_TIMEOUT = 900.0
RELOAD_TIMEOUT = 120.0


def run(
    args: Sequence[str],
    *,
    timeout: float = ENGINE_TIMEOUT,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run an engine command with a hard timeout; on failure the assertion shows its output."""
    for attempt in range(1, ENGINE_ATTEMPTS + 1):
        logger.info("$ %s", " ".join(args))
        started = time.monotonic()
        result = subprocess.run(
            list(args),
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        logger.info("  rc=%d in %.1fs", result.returncode, time.monotonic() - started)
        if result.returncode == 0 or TRANSIENT_ENGINE_ERROR not in result.stderr:
            break
        # podman 4.3 occasionally fails to start a container ("write child: broken pipe");
        # the container was never started, so starting it again is safe.
        logger.warning("transient engine error (attempt %d); retrying", attempt)
        time.sleep(2.0)
    if check:
        assert result.returncode == 0, (
            f"{' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(base_url: str, timeout: float, describe_failure: Any = None) -> None:
    """Poll /readyz until 200; the model load + sample replay + warm-up happens before that."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=2.0)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.5)
    details = describe_failure() if describe_failure else ""
    pytest.fail(f"{base_url}/readyz not ready after {timeout:.0f}s (last: {last})\n{details}")


def shipped_samples() -> list[dict[str, Any]]:
    card = json.loads(SHIPPED_CARD.read_text())
    samples: list[dict[str, Any]] = card["samples"]
    assert samples, "the shipped model card records no samples"
    return samples


def assert_predictions_match_card(base_url: str, headers: dict[str, str] | None = None) -> str:
    """Score the card's recorded samples through the API: same model, same numbers."""
    model_version = ""
    for sample in shipped_samples()[:3]:
        response = httpx.post(
            f"{base_url}/v1/predict", json={"text": sample["text"]}, headers=headers, timeout=30.0
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert 0.0 <= body["probability"] <= 1.0
        assert body["probability"] == pytest.approx(sample["probability"], abs=1e-5)
        expected_label = "positive" if body["probability"] >= 0.5 else "negative"
        assert body["label"] == expected_label
        model_version = str(body["model_version"])
    return model_version


# --- podman: the image on its own -------------------------------------------------------------


def podman_or_skip() -> str:
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("no container engine: `podman` is not on PATH")
    exists = subprocess.run(
        [podman, "image", "exists", BASE_IMAGE], capture_output=True, timeout=ENGINE_TIMEOUT
    )
    if exists.returncode != 0:
        pytest.skip(
            f"base image {BASE_IMAGE} is not present and no registry is reachable: "
            "run ../shared/container/make-base-image (scripts/container-test.sh does)"
        )
    return podman


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """Build both targets once for the module (cached layers make the second build cheap)."""
    podman = podman_or_skip()
    assert SHIPPED_CARD.is_file(), f"the shipped model is missing: {SHIPPED_CARD.parent}"
    env = {**os.environ, "BUILDAH_FORMAT": "docker"}  # docker format keeps HEALTHCHECK
    for target, tag in (("runtime", API_IMAGE), ("train", TRAIN_IMAGE)):
        started = time.monotonic()
        run(
            [
                podman,
                "build",
                "--pull=never",
                "--format",
                "docker",
                "--target",
                target,
                "-t",
                tag,
                ".",
            ],
            timeout=BUILD_TIMEOUT,
            env=env,
        )
        logger.info("built %s (%s) in %.1fs", tag, target, time.monotonic() - started)
    return {"podman": podman, "api": API_IMAGE, "train": TRAIN_IMAGE}


@pytest.fixture
def api_container(images: dict[str, str]) -> Iterator[tuple[str, str]]:
    podman = images["podman"]
    name = f"sentiment-ct-{uuid.uuid4().hex[:8]}"
    port = free_port()
    # Run it the way deploy/k8s runs it: read-only root, no capabilities, no privilege escalation.
    run(
        [
            podman,
            "run",
            "-d",
            "--pull=never",
            "--name",
            name,
            "-p",
            f"127.0.0.1:{port}:8000",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            images["api"],
        ],
    )
    try:
        yield name, f"http://127.0.0.1:{port}"
    finally:
        logs = run([podman, "logs", "--tail", "30", name], check=False)
        logger.info("container logs:\n%s%s", logs.stdout, logs.stderr)
        run([podman, "rm", "-f", "-t", "0", name], check=False)


def test_image_serves_predictions_healthy_and_unprivileged(
    images: dict[str, str], api_container: tuple[str, str]
) -> None:
    podman = images["podman"]
    name, base_url = api_container

    wait_ready(
        base_url,
        READY_TIMEOUT,
        lambda: run([podman, "logs", "--tail", "40", name], check=False).stderr,
    )
    assert httpx.get(f"{base_url}/healthz", timeout=5.0).status_code == 200
    assert assert_predictions_match_card(base_url) == str(SHIPPED_VERSION)

    # The image's own HEALTHCHECK (kept only in docker format) checks readiness and passes.
    (image,) = json.loads(run([podman, "image", "inspect", images["api"]]).stdout)
    assert "/readyz" in " ".join(image["Healthcheck"]["Test"])
    run([podman, "healthcheck", "run", name])

    assert run([podman, "exec", name, "id", "-u"]).stdout.strip() != "0"

    # SIGTERM to PID 1 (uvicorn): a graceful exit with status 0, well inside the stop timeout.
    started = time.monotonic()
    run([podman, "stop", "-t", "30", name], timeout=60.0)
    assert time.monotonic() - started < 25.0, "the server did not exit promptly on SIGTERM"
    exit_code = run([podman, "inspect", "--format", "{{.State.ExitCode}}", name]).stdout.strip()
    assert exit_code == "0"


# --- docker compose (through podman's Docker API): retraining flow ------------------------------


def compose_or_skip() -> dict[str, str]:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no `docker` client on PATH for docker compose")
    env = dict(os.environ)
    env.setdefault("DOCKER_HOST", "unix:///run/podman/podman.sock")
    env.setdefault("DOCKER_BUILDKIT", "0")
    env.setdefault("COMPOSE_BAKE", "false")
    try:
        ping = subprocess.run(
            [docker, "version", "--format", "{{.Server.Version}}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"the Docker API at {env['DOCKER_HOST']} does not answer")
    if ping.returncode != 0:
        pytest.skip(
            f"no Docker API at {env['DOCKER_HOST']}: run `../shared/container/docker-api start` "
            f"(scripts/container-test.sh does): {ping.stderr.strip()[:200]}"
        )
    compose = subprocess.run(
        [docker, "compose", "version"], env=env, capture_output=True, timeout=20
    )
    if compose.returncode != 0:
        pytest.skip("the `docker compose` v2 plugin is not installed")
    if not TRAIN_DATA.is_file():
        pytest.skip(f"training data not found at {TRAIN_DATA} (../shared beside the repo)")
    return env


@pytest.fixture
def compose_stack(images: dict[str, str]) -> Iterator[tuple[list[str], dict[str, str], str]]:
    env = compose_or_skip()
    port = free_port()
    project = f"sentiment-ct-{uuid.uuid4().hex[:8]}"
    env.update(
        {
            "SENTIMENT_IMAGE": images["api"],
            "SENTIMENT_TRAIN_IMAGE": images["train"],
            "API_BIND": "127.0.0.1",
            "API_PORT": str(port),
            "SENTIMENT_RELOAD_INTERVAL_SECONDS": "1",
            "TRAIN_DATA_DIR": str(TRAIN_DATA.parent),
            # IMDB alone, small: the default mix's reading and choosing is the suite's job.
            "TRAIN_ARGS": "--mix imdb --limit 2000 --epochs 1 --force --quiet",
        }
    )
    compose = ["docker", "compose", "-p", project, "-f", str(REPO_ROOT / "docker-compose.yml")]
    try:
        yield compose, env, f"http://127.0.0.1:{port}"
    finally:
        logs = run([*compose, "logs", "--no-color", "--tail", "30"], env=env, check=False)
        logger.info("compose logs:\n%s", logs.stdout)
        run(
            [*compose, "--profile", "train", "down", "-v", "--remove-orphans", "-t", "5"],
            env=env,
            check=False,
        )


def test_compose_retraining_publishes_a_version_the_running_api_picks_up(
    compose_stack: tuple[list[str], dict[str, str], str],
) -> None:
    compose, env, base_url = compose_stack

    # --no-build: the images were just built by the module fixture; compose reuses them.
    run([*compose, "up", "-d", "--no-build", "--pull", "never", "api"], env=env)
    wait_ready(
        base_url,
        READY_TIMEOUT,
        lambda: run([*compose, "logs", "--tail", "40"], env=env, check=False).stdout,
    )
    assert httpx.get(f"{base_url}/v1/model", timeout=5.0).json()["version"] == SHIPPED_VERSION
    assert assert_predictions_match_card(base_url) == str(SHIPPED_VERSION)

    # The compose healthcheck (CMD-SHELL, run by docker-api's ticker) reports healthy.
    deadline = time.monotonic() + 60.0
    status = ""
    while time.monotonic() < deadline:
        status = run([*compose, "ps", "--format", "{{.Health}}", "api"], env=env).stdout.strip()
        if status == "healthy":
            break
        time.sleep(1.0)
    assert status == "healthy"

    def api_process() -> str:
        """Container id + start time of the api: changes if it was recreated or restarted."""
        container_id = run([*compose, "ps", "-q", "api"], env=env).stdout.strip()
        assert container_id, "the api container is gone"
        started_at = run(
            ["docker", "inspect", "--format", "{{.State.StartedAt}}", container_id], env=env
        ).stdout.strip()
        return f"{container_id} {started_at}"

    api_before = api_process()
    run([*compose, "run", "--rm", "train"], env=env, timeout=TRAIN_TIMEOUT)

    deadline = time.monotonic() + RELOAD_TIMEOUT
    card: dict[str, Any] = {}
    while time.monotonic() < deadline:
        card = httpx.get(f"{base_url}/v1/model", timeout=5.0).json()
        if card.get("version") == RETRAINED_VERSION:
            break
        time.sleep(1.0)
    assert card.get("version") == RETRAINED_VERSION, f"api still reports {card.get('version')}"

    # Each worker reloads on its own schedule: /v1/model came from one of them, so wait until
    # unversioned predictions, spread over the workers, all come from the new version.
    in_a_row = 0
    while time.monotonic() < deadline and in_a_row < 20:
        response = httpx.post(
            f"{base_url}/v1/predict", json={"text": "A wonderful, moving film."}, timeout=30.0
        )
        assert response.status_code == 200, response.text
        switched = str(response.json()["model_version"]) == str(RETRAINED_VERSION)
        in_a_row = in_a_row + 1 if switched else 0
        if not switched:
            time.sleep(0.2)
    assert str(response.json()["model_version"]) == str(RETRAINED_VERSION)
    assert 0.0 <= response.json()["probability"] <= 1.0
    assert api_process() == api_before, "the api was restarted to pick up the new version"
