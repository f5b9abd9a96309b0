"""deploy/kserve/inferenceservice.yaml against the fields KServe documents, and deploy/k8s.

The KServe SDK's generated models (``kserve.models``, ``kubernetes.client.models``) carry the
InferenceService API's field names and types (its OpenAPI spec): every key in the manifest
must be one of them, recursively, so a typo is a test failure rather than a field the API
server drops. Then the cross-checks: probes reach the V2 health routes the app serves, both
transports are declared in raw deployment mode (Serverless mode exposes one port only), and
resources, security context and grace period are the ones deploy/k8s uses.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes.client.models as k8s_models
import pytest
import yaml
from kserve import models as kserve_models

from tests.paths import REPO_ROOT

MANIFEST = REPO_ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
DEPLOYMENT = REPO_ROOT / "deploy" / "k8s" / "deployment.yaml"
_SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str}


def _model_class(name: str) -> Any:
    return getattr(kserve_models, name, None) or getattr(k8s_models, name)


def _check(value: Any, type_name: str, where: str) -> list[str]:
    """Problems with ``value`` as the SDK's ``type_name`` (an OpenAPI type)."""
    if type_name in ("object", "ResourceQuantity"):  # free-form; a quantity is "1" or 1
        return []
    # kserve's models write list[X] / dict(str, X), kubernetes' List[X] / Dict[str, X].
    type_name = re.sub(r"^List\[", "list[", type_name)
    type_name = re.sub(r"^Dict\[str, (.+)\]$", r"dict(str, \1)", type_name)
    if type_name in _SCALARS:
        ok = isinstance(value, _SCALARS[type_name]) and not (
            type_name != "bool" and isinstance(value, bool)
        )
        return [] if ok else [f"{where}: expected {type_name}"]
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        inner = type_name[5:-1]
        return [p for i, item in enumerate(value) for p in _check(item, inner, f"{where}[{i}]")]
    if type_name.startswith("dict("):
        inner = re.fullmatch(r"dict\(str, (.+)\)", type_name)
        assert inner, type_name
        if not isinstance(value, dict):
            return [f"{where}: expected a map"]
        return [p for k, v in value.items() for p in _check(v, inner.group(1), f"{where}.{k}")]
    cls = _model_class(type_name)
    if not isinstance(value, dict):
        return [f"{where}: expected a {type_name} object"]
    by_json = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    problems = []
    for key, item in value.items():
        if key not in by_json:
            problems.append(f"{where}.{key}: not a field of {type_name}")
            continue
        problems += _check(item, cls.openapi_types[by_json[key]], f"{where}.{key}")
    return problems


@pytest.fixture(scope="module")
def service() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return document


def test_every_field_is_one_kserve_documents(service: dict[str, Any]) -> None:
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["kind"] == "InferenceService"
    assert _check(service, "V1beta1InferenceService", "InferenceService") == []


def test_a_typo_would_be_caught(service: dict[str, Any]) -> None:
    broken = yaml.safe_load(MANIFEST.read_text())
    broken["spec"]["predictor"]["containers"][0]["readinessProbe"]["httpget"] = {}
    assert _check(broken, "V1beta1InferenceService", "x")


def test_custom_predictor_speaks_v2_like_the_k8s_deployment(service: dict[str, Any]) -> None:
    from app.main import create_app

    predictor = service["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"  # the container KServe routes to
    paths = set(create_app().openapi()["paths"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert path.startswith("/v2/health/") and path in paths
        assert container[probe]["httpGet"]["port"] == container["ports"][0]["containerPort"]
    deployment = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]
    (api,) = deployment["containers"]
    assert container["resources"] == api["resources"]
    assert container["securityContext"] == api["securityContext"]
    assert predictor["securityContext"] == deployment["securityContext"]
    assert predictor["terminationGracePeriodSeconds"] == deployment["terminationGracePeriodSeconds"]


def test_http_and_grpc_ports_are_declared_in_raw_deployment_mode(service: dict[str, Any]) -> None:
    """KServe's Serverless mode (Knative) exposes a single container port, so the gRPC port (named
    h2c, as KServe documents for a gRPC predictor) beside HTTP needs RawDeployment, where the
    predictor's Service maps the first port to 80 and the others to themselves."""
    from app.settings import Settings

    annotations = service["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "RawDeployment"
    (container,) = service["spec"]["predictor"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    http, grpc = container["ports"]
    assert (http["name"], http["containerPort"]) == ("http", int(env["SENTIMENT_PORT"]))
    assert (grpc["name"], grpc["containerPort"]) == ("h2c", int(env["SENTIMENT_GRPC_PORT"]))
    assert grpc["containerPort"] == Settings.model_fields["grpc_port"].default
    deployment = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]
    (api,) = deployment["containers"]
    assert [port["containerPort"] for port in api["ports"]] == [
        port["containerPort"] for port in container["ports"]
    ]
