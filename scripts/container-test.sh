#!/usr/bin/env bash
# Container stage: build the image and run it, then the compose retraining flow
# (tests/container/test_container.py, marker `container`). The offline Kubernetes checks in
# tests/container/test_k8s.py need no engine and run with the normal suite.
#
# Prepares this kind of machine first when the shared scripts exist (no registry, no Docker
# engine): a local python:3.11-slim stand-in and podman's Docker API for `docker compose`.
#   CONTAINER_SCRIPTS   directory holding make-base-image and docker-api (default ../shared/container)
#   PYTHON              interpreter with the dev dependencies (default .venv/bin/python)
# Extra arguments go to pytest, e.g.  scripts/container-test.sh -k compose
set -euo pipefail

cd "$(dirname "$0")/.."
S=${CONTAINER_SCRIPTS:-../shared/container}
PYTHON=${PYTHON:-.venv/bin/python}

bash scripts/container-prep.sh
if [ -d "$S" ]; then
  eval "$(bash "$S/docker-api" env)"   # DOCKER_HOST, DOCKER_BUILDKIT=0, COMPOSE_BAKE=false
fi
export BUILDAH_FORMAT=docker   # keep HEALTHCHECK in podman-built images

# Fail fast on a broken compose file before spending minutes on builds.
if docker compose version >/dev/null 2>&1; then
  docker compose -f docker-compose.yml config -q
fi

exec "$PYTHON" -m pytest -m container tests/container -o log_cli=true -o log_cli_level=INFO "$@"
