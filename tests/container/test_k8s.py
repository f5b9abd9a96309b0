"""Offline checks of the Kubernetes manifests (deploy/k8s) and the container health wiring.

The schemas come from ``kubernetes-validate`` (strict: unknown fields are errors, so a typo such
as ``readinessProbe.httpget`` fails here instead of being silently dropped by the API server).
The cross-checks catch what schemas cannot: probes and healthchecks pointing at routes the app
does not have, selectors that match no pod, settings keys the app does not read, and a grace
period shorter than the graceful shutdown it must cover.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.paths import REPO_ROOT

K8S_DIR = REPO_ROOT / "deploy" / "k8s"
# The oldest Kubernetes minor still commonly run, and the newest the package knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def load_manifests() -> dict[str, dict[str, Any]]:
    """Every document of every manifest listed in kustomization.yaml, keyed by kind."""
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    manifests: dict[str, dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((K8S_DIR / resource).read_text()):
            assert document["kind"] not in manifests, f"two {document['kind']} manifests"
            manifests[document["kind"]] = document
    return manifests


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    return load_manifests()


@pytest.fixture(scope="module")
def pod_spec(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = manifests["Deployment"]["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def api_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec["containers"]
    return dict(container)


@pytest.fixture(scope="module")
def service_app() -> FastAPI:
    """The real app, built without entering its lifespan: no model is loaded."""
    if not (REPO_ROOT / "app" / "main.py").is_file():
        pytest.skip("app/main.py is not written yet")
    from app.main import create_app

    return create_app()


@pytest.fixture(scope="module")
def app_get_routes(service_app: FastAPI) -> set[str]:
    """GET paths of the app, from its OpenAPI schema (FastAPI nests included routers)."""
    paths: dict[str, dict[str, Any]] = service_app.openapi()["paths"]
    return {path for path, operations in paths.items() if "get" in operations}


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    on_disk = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
    } <= set(load_manifests())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_pass_strict_schema_validation(
    manifests: dict[str, dict[str, Any]], version: str
) -> None:
    for kind, manifest in manifests.items():
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{kind} invalid for Kubernetes {version}: {exc}")


def test_strict_validation_rejects_a_misspelt_field(manifests: dict[str, dict[str, Any]]) -> None:
    """Guards the check above: a typo must fail, not be ignored."""
    broken = copy.deepcopy(manifests["Deployment"])
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"]["httpget"] = container["livenessProbe"].pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_probes_hit_real_routes_of_the_app(
    api_container: dict[str, Any], app_get_routes: set[str]
) -> None:
    probes = {name: api_container[name]["httpGet"] for name in ("startupProbe", "livenessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    port_names = {port["name"] for port in api_container["ports"]}
    for name, probe in probes.items():
        assert probe["path"] in app_get_routes, f"{name} probes {probe['path']}, not a route"
        assert probe["port"] in port_names, f"{name} uses unknown port {probe['port']}"


def test_readiness_is_a_native_grpc_probe_on_the_grpc_port(
    api_container: dict[str, Any], manifests: dict[str, dict[str, Any]]
) -> None:
    """grpc.health.v1 on SENTIMENT_GRPC_PORT: the same readiness as /readyz (tests/app/test_grpc.py:
    SERVING once a model is live, NOT_SERVING from SIGTERM on, no listener before the load)."""
    probe = api_container["readinessProbe"]
    assert set(probe) >= {"grpc"} and "httpGet" not in probe
    grpc_port = int(manifests["ConfigMap"]["data"]["SENTIMENT_GRPC_PORT"])
    assert probe["grpc"]["port"] == grpc_port
    assert probe["grpc"].get("service", "") == ""  # the whole server
    declared = {port["name"]: port["containerPort"] for port in api_container["ports"]}
    assert declared["grpc"] == grpc_port
    service_ports = {port["name"]: port for port in manifests["Service"]["spec"]["ports"]}
    assert service_ports["grpc"]["targetPort"] == "grpc"
    assert service_ports["grpc"]["appProtocol"] == "kubernetes.io/h2c"


def test_probe_semantics_while_no_model_is_loaded(
    api_container: dict[str, Any], service_app: FastAPI
) -> None:
    """Before the model is loaded the pod is alive (no restart loop during a slow load) but not
    ready: liveness/startup answer 200, and the gRPC readiness probe finds no listener (the
    gRPC server starts with the loaded model), while /readyz says 503."""
    client = TestClient(service_app)  # not a context manager: the lifespan does not run
    for name in ("startupProbe", "livenessProbe"):
        assert client.get(api_container[name]["httpGet"]["path"]).status_code == 200
    assert client.get("/readyz").status_code == 503


def test_container_healthchecks_hit_the_readiness_route(app_get_routes: set[str]) -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    # The HEALTHCHECK instruction with its backslash-continued lines.
    instruction = re.search(r"^HEALTHCHECK (?:.*\\\n)*.*$", dockerfile, re.M)
    assert instruction, "the Dockerfile has no HEALTHCHECK"
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    compose_test = compose["services"]["api"]["healthcheck"]["test"]
    # CMD-SHELL: podman's Docker API splits exec-form ("CMD") healthchecks on spaces.
    assert compose_test[0] == "CMD-SHELL"
    for where, text in (("Dockerfile", instruction.group(0)), ("compose", compose_test[1])):
        paths = re.findall(r"http://127\.0\.0\.1:8000(/[\w/]*)", text)
        assert paths == ["/readyz"], f"{where} healthcheck checks {paths}"
        assert paths[0] in app_get_routes


def test_service_pdb_and_hpa_target_the_deployment(manifests: dict[str, dict[str, Any]]) -> None:
    deployment = manifests["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    service_selector = manifests["Service"]["spec"]["selector"]
    assert service_selector.items() <= pod_labels.items()
    container_ports = {
        port["name"] for port in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    for port in manifests["Service"]["spec"]["ports"]:
        assert port["targetPort"] in container_ports

    pdb_selector = manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]
    assert pdb_selector.items() <= pod_labels.items()

    hpa = manifests["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    # A PDB of minAvailable 1 only leaves room for drains when the HPA keeps more than one pod.
    assert hpa["minReplicas"] > manifests["PodDisruptionBudget"]["spec"]["minAvailable"]


def test_pods_run_unprivileged_with_resources(
    pod_spec: dict[str, Any], api_container: dict[str, Any]
) -> None:
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["runAsUser"] != 0
    security = api_container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # The Dockerfile's USER is the uid the pod asserts, so the image runs unchanged.
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert f"USER {pod_spec['securityContext']['runAsUser']}" in dockerfile
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= api_container["resources"][kind].keys()


def test_grace_period_covers_prestop_and_graceful_shutdown(
    manifests: dict[str, dict[str, Any]], pod_spec: dict[str, Any], api_container: dict[str, Any]
) -> None:
    prestop_command = api_container["lifecycle"]["preStop"]["exec"]["command"]
    assert prestop_command[0] == "sleep"
    prestop_seconds = float(prestop_command[1])
    drain_seconds = float(manifests["ConfigMap"]["data"]["SENTIMENT_GRACEFUL_SHUTDOWN_SECONDS"])
    assert pod_spec["terminationGracePeriodSeconds"] > prestop_seconds + drain_seconds


def test_configmap_holds_only_settings_the_app_reads(
    manifests: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each key is a real Settings field and its value parses (a typo would be silently unused)."""
    settings_module = pytest.importorskip("app.settings", reason="app/settings.py is not written")
    data: dict[str, str] = manifests["ConfigMap"]["data"]
    fields = {f"SENTIMENT_{name.upper()}" for name in settings_module.Settings.model_fields}
    assert set(data) <= fields, f"unknown settings: {sorted(set(data) - fields)}"
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    settings = settings_module.Settings()
    assert str(settings.model_base_path) == data["SENTIMENT_MODEL_BASE_PATH"]


def test_env_example_documents_only_real_settings() -> None:
    settings_module = pytest.importorskip("app.settings", reason="app/settings.py is not written")
    fields = {f"SENTIMENT_{name.upper()}" for name in settings_module.Settings.model_fields}
    text = (REPO_ROOT / ".env.example").read_text()
    mentioned = set(re.findall(r"^#?\s*(SENTIMENT_[A-Z_]+)=", text, re.M))
    assert mentioned, "no SENTIMENT_ settings documented in .env.example"
    # SENTIMENT_IMAGE / SENTIMENT_TRAIN_IMAGE are compose variables, not app settings.
    assert mentioned - {"SENTIMENT_IMAGE", "SENTIMENT_TRAIN_IMAGE"} <= fields
