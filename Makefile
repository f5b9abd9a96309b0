# One line per task. Every task installs what it needs first (into .venv), so on a fresh machine
# `make serve` and `make test` are the whole setup.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
ARGS  ?=

.PHONY: install serve test lint format train bench bench-peers bench-growth container-test playground-screenshot clean

GENERATED := app/protocols/grpc/_generated/open_inference_grpc.binpb

# The dependencies, TF Serving's compiled protocol (a pinned wheel whose declared `tensorflow`
# dependency we replace with tensorflow-cpu, hence --no-deps), then the published .proto files
# compiled into app/protocols/grpc/_generated (protos/README.md).
install: $(STAMP) $(GENERATED)
$(STAMP): pyproject.toml protos/requirements-no-deps.txt
	python3 -m venv $(VENV) && $(PY) -m pip install --quiet --upgrade pip \
	  && $(PY) -m pip install --quiet -e '.[dev]' \
	  && $(PY) -m pip install --quiet --no-deps -r protos/requirements-no-deps.txt && touch $(STAMP)
$(GENERATED): $(STAMP) protos/compile.py $(wildcard protos/*/*.proto)
	$(PY) protos/compile.py

serve: install ; $(PY) -m app $(ARGS)
test: lint ; $(PY) -m pytest $(ARGS)
lint: install ; $(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy
format: install ; $(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .
train: install ; $(PY) -m training $(ARGS)
bench: install ; $(PY) -m bench $(ARGS)
# Peer mode: also BentoML, LitServe and a naive FastAPI app on the same model (bench/peers), run
# from their own venv so their pins never touch the service's.
PEERS_VENV  := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.install-stamp
bench-peers: install $(PEERS_STAMP) ; $(PY) -m bench --peers --peers-python $(PEERS_VENV)/bin/python $(ARGS)
$(PEERS_STAMP): bench/peers/requirements.txt
	python3 -m venv $(PEERS_VENV) && $(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip \
	  && $(PEERS_VENV)/bin/python -m pip install --quiet -r bench/peers/requirements.txt && touch $(PEERS_STAMP)
# Time per request by text length and batch size, REST and gRPC, at concurrency 1 (PNG plot: --plot).
bench-growth: install ; $(PY) -m bench.growth $(ARGS)
# gRPC (Open Inference ModelInfer) beside REST (/v1/predict) on the same texts, c=1 and c=64.
.PHONY: bench-grpc
bench-grpc: install ; $(PY) -m bench.grpc $(ARGS)
container-test: install ; bash scripts/container-test.sh
# The README's screenshot: the playground browser test (headless Chromium) against the newest shipped version.
playground-screenshot: install ; $(PY) -m pytest tests/app/test_playground_browser.py --playground-screenshot=docs/playground.png
clean: ; rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache app/protocols/grpc/_generated
