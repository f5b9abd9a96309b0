# Sentiment inference service: FastAPI + a TensorFlow SavedModel (CPU).
#
# Targets:
#   runtime (default, last stage)  the API server with the shipped versions at /models/sentiment/<N>
#   train                          `python -m training ...` that publishes new versions into /models
#
# Build: BUILDAH_FORMAT=docker podman build -t sentiment-service .      (docker build works as-is)
#        podman build --target train -t sentiment-service-train .
#
# Layer order is chosen for the cache: the ~1 GB dependency layer depends only on the
# dependency list extracted from pyproject.toml, so editing code, the model, or any other part of
# pyproject.toml (ruff/mypy/pytest config) does not reinstall TensorFlow.

ARG PYTHON_IMAGE=python:3.11-slim

# --- base: shared interpreter settings ---------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
# One fixed non-root uid/gid for the api and train images, so both can write the shared model
# volume and Kubernetes' runAsNonRoot can verify it numerically.
RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid app --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin app

# --- requirements: pyproject.toml -> requirements files -----------------------------------------
# Only the dependency lists leave this stage, so the install layers below are keyed on them alone.
FROM base AS requirements
COPY pyproject.toml /src/pyproject.toml
RUN python -c "import tomllib, pathlib; \
project = tomllib.loads(pathlib.Path('/src/pyproject.toml').read_text())['project']; \
pathlib.Path('/src/requirements.txt').write_text('\n'.join(project['dependencies']) + '\n'); \
pathlib.Path('/src/requirements-train.txt').write_text('\n'.join(project['optional-dependencies']['train']) + '\n')"

# --- deps: the service's virtualenv --------------------------------------------------------------
FROM base AS deps
COPY --from=requirements /src/requirements.txt /tmp/requirements.txt
# TF Serving's compiled protocol; --no-deps: its `tensorflow` dependency is tensorflow-cpu here.
COPY protos/requirements-no-deps.txt /tmp/requirements-no-deps.txt
# Trimmed in the same layer (later layers cannot shrink earlier ones), ~590 MB in all:
# - tensorflow/include (C++ headers, ~290 MB) and libclang (~60 MB, TF's C++ tooling) are never
#   used when serving or training from Python;
# - TensorFlow's shared libraries ship with full symbol tables (.symtab, ~250 MB), only useful to
#   debuggers; `strip --strip-unneeded` keeps the dynamic symbols the loader needs. binutils is
#   installed for that and purged again.
RUN python -m venv "$VIRTUAL_ENV" \
 && pip install --upgrade pip \
 && pip install -r /tmp/requirements.txt \
 && pip install --no-deps -r /tmp/requirements-no-deps.txt \
 && site="$VIRTUAL_ENV/lib/python3.11/site-packages" \
 && rm -rf "$site/tensorflow/include" "$site/clang" "$site"/libclang-*.dist-info \
 && apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && find "$site/tensorflow" -type f -name '*.so*' -exec strip --strip-unneeded {} + \
 && apt-get purge -y --auto-remove binutils \
 && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log /var/cache/debconf/*-old

# --- protos: the published .proto files compiled (protos/compile.py), for the runtime stage -------
FROM base AS protos
COPY pyproject.toml /src/pyproject.toml
COPY protos/ /src/protos/
RUN python -c "import tomllib, pathlib; \
extra = tomllib.loads(pathlib.Path('/src/pyproject.toml').read_text())['project']['optional-dependencies']['protos']; \
pathlib.Path('/src/requirements-protos.txt').write_text('\n'.join(extra) + '\n')" \
 && pip install -r /src/requirements-protos.txt \
 && python /src/protos/compile.py --out /build

# --- train-deps: adds the `train` extra -----------------------------------------------------------
FROM deps AS train-deps
COPY --from=requirements /src/requirements-train.txt /tmp/requirements-train.txt
RUN pip install -r /tmp/requirements-train.txt

# --- train: publishes model versions into /models/<name>/<N> --------------------------------------
# Built on the dependency stages rather than COPY --from: they hold nothing but the venv (no
# compilers, no caches), and sharing their layers saves a 1.3 GB copy per build and on disk.
FROM train-deps AS train
WORKDIR /srv
COPY contract/ /srv/contract/
COPY training/ /srv/training/
# The shipped model too: whichever service first mounts the fresh `models` volume seeds it the same
# way, so the first trained version is always the one after the highest shipped (now 4).
RUN install -d -o 10001 -g 10001 /models /data
COPY --chown=10001:10001 model/sentiment/ /models/sentiment/
# The user has no home; downloads (--cache-dir), matplotlib and Keras caches go under /tmp.
ENV HOME=/tmp
USER 10001:10001
ENTRYPOINT ["python", "-m", "training"]
CMD ["--help"]

# --- runtime: the API server ---------------------------------------------------------------------
FROM deps AS runtime
LABEL org.opencontainers.image.title="sentiment-service" \
      org.opencontainers.image.description="FastAPI sentiment inference service (TensorFlow SavedModel, CPU)" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /srv
COPY contract/ /srv/contract/
COPY app/ /srv/app/
COPY --from=protos /build/app/protocols/grpc/_generated/ /srv/app/protocols/grpc/_generated/
# The model dir belongs to the app user: a named volume mounted at /models is seeded from here and
# the train service (same uid) publishes new versions next to the shipped one.
RUN install -d -o 10001 -g 10001 /models
COPY --chown=10001:10001 model/sentiment/ /models/sentiment/
ENV SENTIMENT_MODEL_BASE_PATH=/models/sentiment \
    SENTIMENT_MODEL_NAME=sentiment \
    SENTIMENT_HOST=0.0.0.0 \
    SENTIMENT_PORT=8000
USER 10001:10001
# HTTP (REST) and gRPC (SENTIMENT_GRPC_PORT).
EXPOSE 8000 8001
# Readiness, not liveness: "healthy" means the model is loaded and warmed. slim has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
# `python -m app` runs as PID 1 in exec form so it receives SIGTERM. With the default two workers
# PID 1 is the supervisor (app/workers.py): it passes SIGTERM to each uvicorn worker (uvloop +
# httptools, configured from SENTIMENT_* settings), which stops accepting and drains in-flight
# requests for up to SENTIMENT_GRACEFUL_SHUTDOWN_SECONDS (30); then it exits 0. Orchestrators must
# wait longer than that.
CMD ["python", "-m", "app"]
