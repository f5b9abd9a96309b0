"""Offline checks of retraining on the cluster (deploy/k8s/training): the training Job, the model
and dataset volumes and the Deployment patch that mounts the models, against the Kubernetes
schema (strict, like the other manifests) and against each other: the Job publishes where the
service reads, with arguments the training command accepts, and the seeding script really
copies the shipped versions into the volume without touching published ones.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from contract import STAGING_PREFIX
from tests.container.test_k8s import K8S_DIR, KUBERNETES_VERSIONS, load_manifests
from tests.paths import REPO_ROOT

TRAINING_DIR = K8S_DIR / "training"


def _documents(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((TRAINING_DIR / name).read_text())
    return document


def merged(base: Any, patch: Any) -> Any:
    """`patch` merged into `base` as a strategic merge patch does for these manifests: maps
    key by key, lists of named items (containers, volumes) or mounts by name or mount path."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merged(base[key], value) if key in base else value
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) for i in base)
    ):
        key = "name" if all("name" in item for item in base + patch) else "mountPath"
        out = [copy.deepcopy(item) for item in base]
        for item in patch:
            match = [i for i, existing in enumerate(out) if existing[key] == item[key]]
            if match:
                out[match[0]] = merged(out[match[0]], item)
            else:
                out.append(item)
        return out
    return patch


@pytest.fixture(scope="module")
def component() -> dict[str, Any]:
    return _documents("kustomization.yaml")


@pytest.fixture(scope="module")
def deployment(component: dict[str, Any]) -> dict[str, Any]:
    """The base Deployment with the component's patch applied, as kustomize renders it."""
    (patch,) = component["patches"]
    result: dict[str, Any] = merged(load_manifests()["Deployment"], _documents(patch["path"]))
    return result


@pytest.fixture(scope="module")
def job() -> dict[str, Any]:
    return _documents("job.yaml")


def test_the_component_lists_its_files_and_the_job_is_in_no_kustomization(
    component: dict[str, Any],
) -> None:
    assert component["kind"] == "Component"
    listed = set(component["resources"]) | {p["path"] for p in component["patches"]}
    on_disk = {p.name for p in TRAINING_DIR.glob("*.yaml")} - {"kustomization.yaml", "job.yaml"}
    assert listed == on_disk, "every file but the Job is part of the component"
    base = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert "training/job.yaml" not in base.get("resources", [])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_pass_strict_schema_validation(
    component: dict[str, Any], deployment: dict[str, Any], job: dict[str, Any], version: str
) -> None:
    documents = [deployment, job] + [_documents(name) for name in component["resources"]]
    for document in documents:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{document['kind']} invalid for Kubernetes {version}: {exc}")


def _claims(pod: dict[str, Any]) -> dict[str, str]:
    return {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }


def test_the_job_publishes_where_the_service_reads(
    deployment: dict[str, Any], job: dict[str, Any], component: dict[str, Any]
) -> None:
    from training.cli import parse_args

    pod = deployment["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    models = {m["name"]: m for m in api["volumeMounts"]}["models"]
    assert models["readOnly"] is True and models["mountPath"] == "/models"
    claims = {_documents(name)["metadata"]["name"] for name in component["resources"]}
    job_pod = job["spec"]["template"]["spec"]
    assert (
        _claims(pod)["models"] == _claims(job_pod)["models"]
        and _claims(job_pod)["models"] in claims
    )
    assert set(_claims(job_pod).values()) <= claims
    (train,) = job_pod["containers"]
    args = parse_args(train["args"])  # the training command accepts them
    config = load_manifests()["ConfigMap"]["data"]
    assert str(Path(args.output_dir) / args.name) == config["SENTIMENT_MODEL_BASE_PATH"]
    mounts = {m["mountPath"]: m for m in train["volumeMounts"]}
    assert "readOnly" not in mounts[str(args.output_dir)], "the Job writes the models"
    assert mounts[args.datasets]["readOnly"] is True
    assert str(args.cache_dir).startswith("/tmp") and "/tmp" in mounts


def test_the_job_runs_unprivileged_and_retries_only_what_a_retry_can_fix(
    job: dict[str, Any],
) -> None:
    from training.cli import EXIT_BAD_INPUT, EXIT_REFUSED

    assert "name" not in job["metadata"] and job["metadata"]["generateName"]
    spec = job["spec"]
    (fail_job,) = [r for r in spec["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert set(fail_job["onExitCodes"]["values"]) == {EXIT_BAD_INPUT, EXIT_REFUSED}
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"] is True
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert f"USER {pod['securityContext']['runAsUser']}" in dockerfile
    (train,) = pod["containers"]
    assert train["securityContext"]["allowPrivilegeEscalation"] is False
    assert train["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= train["resources"]["limits"].keys()


def test_seeding_copies_the_shipped_versions_once_and_never_rewrites_one(
    deployment: dict[str, Any], tmp_path: Path
) -> None:
    (seed,) = deployment["spec"]["template"]["spec"]["initContainers"]
    script = seed["command"][-1]
    assert f"/{STAGING_PREFIX}seed-" in script, "staging directories the service ignores"
    shipped, volume = tmp_path / "image" / "models", tmp_path / "volume"
    for version in ("1", "7"):
        (shipped / "sentiment" / version).mkdir(parents=True)
        (shipped / "sentiment" / version / "model_card.json").write_text(f"shipped {version}")
    (volume / "sentiment" / "7").mkdir(parents=True)
    (volume / "sentiment" / "7" / "model_card.json").write_text("published earlier")
    local = script.replace("/models/", f"{shipped}/").replace("/volume", str(volume))
    for _ in range(2):  # a second pod finds everything there
        subprocess.run(["sh", "-c", local], check=True, timeout=30)
    assert sorted(p.name for p in (volume / "sentiment").iterdir()) == ["1", "7"]
    assert (volume / "sentiment" / "1" / "model_card.json").read_text() == "shipped 1"
    assert (volume / "sentiment" / "7" / "model_card.json").read_text() == "published earlier"
