"""Service configuration: the one place that reads the environment.

Every knob is an environment variable with the ``SENTIMENT_`` prefix (for example
``SENTIMENT_MODEL_BASE_PATH``), so the same image runs unchanged on a laptop, in a container
and under Kubernetes. The one exception is ``PROMETHEUS_MULTIPROC_DIR``, prometheus-client's
own variable: the library reads it when imported, so the service must agree with it.

This class is the one home of every default and description: the README's configuration
table is ``python -m app.settings``'s output, and ``tests/app/test_settings_defaults.py``
checks the README, ``.env.example`` and ``deploy/k8s/configmap.yaml`` against it by value.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.core.policy import CANARY_LABEL, STABLE_LABEL, VersionLabels, VersionPolicy

ENV_PREFIX = "SENTIMENT_"
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
WorkerCpuAffinity = Literal["auto", "off"]


def _unset_if_blank(value: object) -> object:
    """An empty variable (``SENTIMENT_X=``, as Compose's ``${X:-}`` gives) means unset."""
    return None if isinstance(value, str) and not value.strip() else value


# Parsed from the operator's text (NoDecode: not JSON), printed back as written.
PolicySetting = Annotated[VersionPolicy, NoDecode, BeforeValidator(VersionPolicy.parse)]
LabelsSetting = Annotated[VersionLabels, NoDecode, BeforeValidator(VersionLabels.parse)]


class ConfigurationError(Exception):
    """The settings can't be served as given, found once the model directory is read (a label
    on a version that is not loaded, a policy over the memory budget): start-up stops with
    this message rather than serving something the operator did not ask for."""


class Settings(BaseSettings):
    """All runtime settings of the service, validated once at startup."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        frozen=True,
        protected_namespaces=(),
        populate_by_name=True,
    )

    model_base_path: Path = Field(
        default=Path("model/sentiment"),
        description=(
            "Directory holding integer version sub-directories (TF Serving layout); "
            "SENTIMENT_MODEL_VERSION_POLICY says which are served. Relative paths resolve "
            "against the working directory."
        ),
    )
    model_name: str = Field(
        default="sentiment",
        min_length=1,
        description="Model name accepted by the TF Serving compatible routes /v1/models/{name}.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description=(
            "When set, every REST route and gRPC method requires this key, in the X-API-Key "
            "header (gRPC metadata x-api-key) or as 'Authorization: Bearer <key>', except the "
            "open ones: the playground page /, /healthz, /readyz, /metrics, /v2/health/live, "
            "/v2/health/ready, the API docs (/docs, /redoc, /openapi.json) and, over gRPC, "
            "health, reflection, ServerLive and ServerReady. Unset: auth is off."
        ),
    )
    max_text_chars: int = Field(
        default=20_000,
        ge=1,
        description="Maximum characters in one text; longer texts are rejected with 422.",
    )
    max_batch_items: int = Field(
        default=256,
        ge=1,
        description="Maximum texts in one batch or TF Serving request; more are rejected with 413.",
    )
    max_explain_items: int = Field(
        default=16,
        ge=1,
        description=(
            "Maximum texts in one /v1/explain request; more are rejected with 413. Lower than "
            "the batch limit: an explanation answers every unit of every text."
        ),
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Maximum request body size in bytes, enforced before parsing (413).",
    )
    max_request_head_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description=(
            "Maximum size in bytes of a request line plus headers; a longer head is answered "
            "431 and its connection closed, before it is buffered (memory stays bounded)."
        ),
    )
    request_head_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Time a client has to send a request line and headers, from connecting (or from "
            "the first byte of a later request on a keep-alive connection); a connection that "
            "misses it is closed (408 if it sent part of a head). Bounds slowloris clients."
        ),
    )
    request_body_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Time a client has to send a request's whole body once its headers are in (the "
            "default body limit at 0.55 Mbit/s); a request that misses it is answered 408 and "
            "its connection closed. Bounds clients that trickle a body."
        ),
    )
    reload_interval_seconds: float = Field(
        default=10.0,
        ge=0,
        description=(
            "How often the model base directory is polled for a newer version; 0 disables "
            "hot reload."
        ),
    )
    model_settle_seconds: float = Field(
        default=2.0,
        ge=0,
        description=(
            "Hot reload waits until no file under a new version directory has changed for this "
            "long before loading it, so a version copied in place (not renamed) is not read "
            "half-written. A refused version is retried whenever any file under it changes."
        ),
    )
    model_version_policy: PolicySetting = Field(
        default=VersionPolicy(),
        description=(
            "Which versions are loaded and served: `latest` (the highest that loads), "
            "`latest:N` (the N highest), `all`, or `specific:6,7`. Reload applies it: a new "
            "version serves once loaded and verified, one leaving the policy is unloaded when "
            "its in-flight requests finish, one that fails to load leaves the others serving."
        ),
    )
    model_version_labels: LabelsSetting = Field(
        default=VersionLabels(),
        description=(
            "Version labels, e.g. `stable=6,canary=7`, each on a version the policy loads "
            "(else start-up stops). Unversioned requests go to `stable` when set, else to the "
            "highest loaded version. A labelled version stays loaded while it is labelled."
        ),
    )
    canary_percent: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description=(
            "Share (%) of unversioned requests sent to the `canary` label instead of `stable` "
            "(both must be set), chosen per request; the same `X-Request-ID` always gets the "
            "same version."
        ),
    )
    shadow_label: Annotated[str | None, BeforeValidator(_unset_if_blank)] = Field(
        default=None,
        description=(
            "A label whose version also scores a copy of requests, off the request path, for "
            "comparison metrics (sentiment_shadow_*); it never answers. Unset: no shadow."
        ),
    )
    shadow_version: Annotated[int | None, BeforeValidator(_unset_if_blank)] = Field(
        default=None,
        ge=0,
        description="As SENTIMENT_SHADOW_LABEL, naming a version the policy loads instead.",
    )
    shadow_percent: float = Field(
        default=100.0,
        ge=0,
        le=100,
        description=(
            "Share (%) of requests copied to the shadow version. Copies are dropped, never "
            "queued, when the shadow falls behind."
        ),
    )
    memory_budget_mb: Annotated[int | None, BeforeValidator(_unset_if_blank)] = Field(
        default=None,
        ge=1,
        description=(
            "Most resident memory (MiB) one worker may use with every version of the policy "
            "loaded: a policy that would exceed it stops start-up, a new version that would is "
            "not loaded. Unset: no budget. Costs per version: docs/operations.md."
        ),
    )
    max_batch_size: int = Field(
        default=64,
        ge=1,
        description=(
            "Most texts gathered from concurrent requests into one model call. A single "
            "request with more texts is still scored in one call."
        ),
    )
    max_batch_wait_ms: float = Field(
        default=0.0,
        ge=0,
        description=(
            "Extra time the batcher waits for more requests when a batch is not full. 0 (the "
            "default) is greedy batching: requests that arrive while the model is busy are "
            "batched together, and an idle service adds no wait at all."
        ),
    )
    batch_gather_ms: float = Field(
        default=1.0,
        ge=0,
        description=(
            "Under load (requests already queued when a model call ends), how long the next "
            "batch may keep filling; it starts at once when full. Each model call has a fixed "
            "CPU cost, so fuller batches raise throughput; an idle service never waits. "
            "0 starts every batch at once."
        ),
    )
    queue_size: int = Field(
        default=512,
        ge=1,
        description="Most requests waiting for the model; beyond it requests get 429 at once.",
    )
    tf_intra_op_threads: int = Field(
        default=1,
        ge=0,
        description=(
            "TensorFlow intra-op threads per process (0 = TensorFlow's default). One keeps "
            "the model on one core so the event loop keeps the other."
        ),
    )
    tf_inter_op_threads: int = Field(
        default=1,
        ge=0,
        description=(
            "TensorFlow inter-op threads per process (0 = TensorFlow's default). A version in "
            "an inline session runs its ops on the model thread and uses them only for "
            "explain's control flow, with at least 2."
        ),
    )
    gil_switch_interval_ms: float = Field(
        default=0.1,
        gt=0,
        description=(
            "Python's GIL switch interval (sys.setswitchinterval) for the serving process. "
            "The model thread re-takes the GIL after every model call; with Python's 5 ms "
            "default it waits behind a busy event loop, so model calls stall under load."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Bind address used by `python -m app`.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port used by `python -m app`.")
    grpc_port: int = Field(
        default=8001,
        ge=0,
        le=65535,
        description=(
            "gRPC port (TF Serving's PredictionService, the Open Inference Protocol, health "
            "and reflection), served by every worker beside HTTP on the same host; 0 turns "
            "gRPC off. Its maximum message size is SENTIMENT_MAX_BODY_BYTES."
        ),
    )
    workers: int = Field(
        default=2,
        ge=1,
        description=(
            "Worker processes of `python -m app`, each on its own SO_REUSEPORT socket and "
            "with its own copy of every version it serves (about 0.8 GB RSS with one). Two use "
            "both cores of a 2-core machine: "
            "one event loop cannot parse HTTP as fast as the model scores batches (see the "
            "benchmark)."
        ),
    )
    worker_cpu_affinity: WorkerCpuAffinity = Field(
        default="auto",
        description=(
            "auto binds each worker of `python -m app` to a CPU of its own when the process "
            "may run on exactly as many CPUs as it has workers (a machine or cpuset of that "
            "size, such as docker --cpuset-cpus or Kubernetes' static CPU manager): a worker's "
            "event loop and model thread then wake each other on one CPU instead of across "
            "two, which lowers latency at low load. off leaves placement to the kernel."
        ),
    )
    prometheus_multiproc_dir: Path | None = Field(
        default=None,
        validation_alias="PROMETHEUS_MULTIPROC_DIR",
        description=(
            "Where workers write metrics so /metrics reports all of them (prometheus-client's "
            "own variable, no prefix). `python -m app` with several workers uses a fresh "
            "temporary directory when unset, and empties a given one at startup."
        ),
    )
    log_level: LogLevel = Field(
        default="info",
        description=(
            "Log level of the service; at debug, `python -m app` also shows TensorFlow's C++ "
            "start-up messages (hidden otherwise)."
        ),
    )
    access_log: bool = Field(
        default=False,
        description="Uvicorn access log; off by default because it costs ~30% at low latency.",
    )
    graceful_shutdown_seconds: float = Field(
        default=30.0,
        gt=0,
        description="On SIGTERM, how long in-flight requests may take before the server exits.",
    )

    @model_validator(mode="after")
    def _versions_fit_together(self) -> Settings:
        """The version settings that contradict each other, named as an operator sets them."""
        labels = self.model_version_labels
        policy = self.model_version_policy
        if self.canary_percent > 0 and (
            labels.get(CANARY_LABEL) is None or labels.get(STABLE_LABEL) is None
        ):
            raise ValueError(
                f"SENTIMENT_CANARY_PERCENT={self.canary_percent:g} splits unversioned requests "
                f"between the {STABLE_LABEL!r} and {CANARY_LABEL!r} labels: set both in "
                "SENTIMENT_MODEL_VERSION_LABELS (e.g. stable=6,canary=7)"
            )
        if self.shadow_label is not None and self.shadow_version is not None:
            raise ValueError("set SENTIMENT_SHADOW_LABEL or SENTIMENT_SHADOW_VERSION, not both")
        if self.shadow_label is not None and labels.get(self.shadow_label) is None:
            raise ValueError(
                f"SENTIMENT_SHADOW_LABEL={self.shadow_label} is not a label of "
                f"SENTIMENT_MODEL_VERSION_LABELS ({labels or 'unset'})"
            )
        if policy.kind == "specific":
            named = {
                f"SENTIMENT_MODEL_VERSION_LABELS: label {name}": version for name, version in labels
            }
            if self.shadow_version is not None:
                named["SENTIMENT_SHADOW_VERSION"] = self.shadow_version
            for what, version in named.items():
                if version not in policy.versions:
                    raise ValueError(
                        f"{what} names version {version}, which "
                        f"SENTIMENT_MODEL_VERSION_POLICY={policy} does not load"
                    )
        return self

    @property
    def shadow_target(self) -> tuple[str | None, int | None] | None:
        """The shadow as (label, version), one of them set; None without a shadow."""
        if self.shadow_label is None and self.shadow_version is None:
            return None
        return self.shadow_label, self.shadow_version

    @property
    def pinned_versions(self) -> set[int]:
        """Versions that stay loaded whatever the policy says: the labelled ones and the
        shadow version (requests name them; they must not vanish under a reload)."""
        pinned = self.model_version_labels.versions
        if self.shadow_version is not None:
            pinned.add(self.shadow_version)
        return pinned


def invalid_settings_message(error: ValidationError) -> str:
    """What is wrong with the environment, one line per setting, named as the operator set it
    (for entry points: a clear message rather than a traceback)."""
    lines = ["invalid configuration:"]
    for problem in error.errors(include_url=False, include_input=False):
        location = problem["loc"]
        field = location[0] if location else None
        message = problem["msg"].removeprefix("Value error, ")
        if isinstance(field, str) and field in Settings.model_fields:
            lines.append(f"  {env_name(field)}: {message}")
        else:
            lines.append(f"  {message}")
    return "\n".join(lines)


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"{ENV_PREFIX}{field.upper()}"


def default_text(field: str) -> str:
    """``field``'s default as an operator would write it (``unset`` when there is none)."""
    default = Settings.model_fields[field].default
    if default is None or str(default) == "":
        return "unset"
    return str(default).lower() if isinstance(default, bool) else str(default)


def configuration_table() -> str:
    """The README's configuration table, generated here so it cannot drift from the defaults."""
    rows = [
        f"| `{env_name(field)}` | `{default_text(field)}` | {info.description} |"
        for field, info in Settings.model_fields.items()
    ]
    return "\n".join(["| variable | default | meaning |", "| --- | --- | --- |", *rows])


def differs_from_default(field: str, text: str) -> bool:
    """Whether the environment value ``text`` gives ``field`` a value other than its default.

    Compared as parsed values, so ``0`` and ``0.0`` or ``false`` and ``False`` agree.
    """
    parsed = getattr(Settings.model_validate({field: text}), field)
    return bool(parsed != Settings.model_fields[field].default)


if __name__ == "__main__":
    sys.stdout.write(configuration_table() + "\n")
