#!/usr/bin/env bash
# Make this machine able to run the container tests (no registry, no Docker engine): build the
# local python:3.11-slim stand-in and serve podman's Docker API for `docker compose`.
# Idempotent (about 1 s when already done); run as root. The caller still needs the client env:
#   bash scripts/container-prep.sh && eval "$(bash ../shared/container/docker-api env)"
#   CONTAINER_SCRIPTS   directory holding make-base-image and docker-api (default ../shared/container)
set -euo pipefail

cd "$(dirname "$0")/.."
S=${CONTAINER_SCRIPTS:-../shared/container}
if [ ! -d "$S" ]; then
  echo "container-prep: $S not found; nothing to prepare" >&2
  exit 0
fi
# debootstrap downloads ~125 packages from Debian's mirror; a dropped download fails the whole
# run (seen once on a fresh machine, fine on the retry), so try a few times.
for attempt in 1 2 3; do
  if timeout 600 bash "$S/make-base-image" >&2; then
    break
  fi
  if [ "$attempt" = 3 ]; then
    echo "container-prep: make-base-image failed 3 times" >&2
    exit 1
  fi
  echo "container-prep: make-base-image failed (attempt $attempt); retrying" >&2
  sleep 5
done
# A long-lived podman API service was seen to degrade here (every container start then failed
# with "write child: broken pipe" until it was restarted), so always begin with a fresh one.
timeout 60 bash "$S/docker-api" stop >/dev/null 2>&1 || true
# `start` prints the client env on stdout; the caller evals `docker-api env` itself.
timeout 120 bash "$S/docker-api" start >/dev/null
