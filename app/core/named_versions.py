"""The versions the settings name (labels, the shadow) must exist and be loaded at start-up.

An operator who labels a version, or names it as the shadow, expects requests to reach it. If
the directory has no such version, or the policy would not load it, or it fails to load,
``ModelRegistry.start`` stops with a ``ConfigurationError`` that names the setting as the
operator wrote it and says what would work, rather than serving something else. Its own module
because these are messages to the operator about the settings, apart from the registry's
loading and swapping (``app.core.registry``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from app.core.policy import VersionPolicy
from app.settings import ConfigurationError, Settings


def named_versions(settings: Settings) -> dict[str, int]:
    """Every version the settings name, keyed by the setting that names it (for messages)."""
    named = {
        f"SENTIMENT_MODEL_VERSION_LABELS label {name}={version}": version
        for name, version in settings.model_version_labels
    }
    if settings.shadow_version is not None:
        named[f"SENTIMENT_SHADOW_VERSION={settings.shadow_version}"] = settings.shadow_version
    return named


def listed(versions: Iterable[int]) -> str:
    """Versions for a message, highest first (``none`` when there are none)."""
    found = sorted(versions, reverse=True)
    return ", ".join(str(version) for version in found) if found else "none"


def require_on_disk(
    named: Mapping[str, int], on_disk: Collection[int], policy: VersionPolicy, base_path: Path
) -> None:
    """ConfigurationError unless every named version is under ``base_path`` and in the policy
    (checked before anything loads: the directory alone shows it)."""
    candidates = set(policy.candidates(list(on_disk)))
    for what, version in named.items():
        if version not in on_disk:
            raise ConfigurationError(
                f"{what}: there is no version {version} under {base_path} "
                f"(found: {listed(on_disk)})"
            )
        if version not in candidates:
            raise ConfigurationError(
                f"{what}: SENTIMENT_MODEL_VERSION_POLICY={policy} does not load version {version}"
            )


def require_loaded(
    named: Mapping[str, int],
    serving: Collection[int],
    refused: Mapping[int, tuple[int, str]],
    policy: VersionPolicy,
) -> None:
    """ConfigurationError unless every named version serves after the first load: it failed
    to load (``refused``: version -> (fingerprint, why)), or the policy loads others."""
    for what, version in named.items():
        if version in serving:
            continue
        rejected = refused.get(version)
        if rejected is not None:
            why = f"it failed to load ({rejected[1]})"
        else:
            wanted = ",".join(str(v) for v in sorted({*serving, *named.values()}))
            why = (
                f"SENTIMENT_MODEL_VERSION_POLICY={policy} loads {listed(serving)} "
                f"only (specific:{wanted} would load them all)"
            )
        raise ConfigurationError(f"{what}: version {version} is not loaded: {why}")
