"""Publish atomically: a version is built in a hidden staging directory beside the versions and
renamed into place only once it is complete and verified, so a reader (the service's directory
watcher, TF Serving) never sees half a model. A version the gate refuses is moved out of the
model directory instead, for inspection.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from contract import STAGING_PREFIX, ModelCard, version_dirs

logger = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """The version could not be published; nothing was."""


def existing_versions(base_dir: Path) -> list[int]:
    return [version for version, _ in version_dirs(base_dir)]


def create_staging_dir(base_dir: Path) -> Path:
    """A hidden directory beside the versions: same filesystem, so the final rename is atomic."""
    base_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=base_dir))
    # mkdtemp makes it private (0700); a published version must be readable by a service
    # running as another user (a shared volume in compose or Kubernetes).
    staging.chmod(0o755)
    return staging


def publish(staging: Path, base_dir: Path, card: ModelCard) -> Path:
    """Write the model card (with its version number) and rename `staging` to the next version.

    The rename is the single moment of publication; before it no integer directory exists.
    """
    version = max(existing_versions(base_dir), default=0) + 1
    card.model_copy(update={"version": version}).write(staging)
    target = base_dir / str(version)
    if target.exists():  # a concurrent publisher won the race; never overwrite a version
        raise PublishError(f"{target} appeared while publishing; retry to take the next version")
    staging.rename(target)
    logger.info("Published %s", target)
    return target


def keep_refused(staging: Path, cache_dir: Path, name: str, card: ModelCard) -> Path:
    """Move a refused export out of the model base directory, for inspection."""
    target = cache_dir / "refused" / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}"
    target.parent.mkdir(parents=True, exist_ok=True)
    card.write(staging)
    shutil.move(staging, target)
    return target


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
