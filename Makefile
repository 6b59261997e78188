# Developer and CI entry points. Everything runs from the virtualenv in .venv/
# (created on demand, re-installed whenever pyproject.toml changes) and from
# pinned npm tools in .tools/ (installed from tools/package*.json).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

TOOLS := .tools
TOOLS_STAMP := $(TOOLS)/.installed
BUF := $(TOOLS)/node_modules/.bin/buf

# Hand-written Python packages that exist right now (generated code under
# orderengine/v1/ is excluded by the ruff and mypy config in pyproject.toml).
MYPY_PATHS := $(wildcard orderengine order_service router_service executor gateway tests)

PYTEST_ARGS ?=
RUN_ARGS ?=
# make run REPLICAS=2: two of every gRPC service, and twice the workers.
REPLICAS ?= 1
BENCH_ARGS ?=

.PHONY: help install protos check-protos buf-lint lint format test chaos bench run compose-check k8s-check clean node-client screenshot

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and pip install -e ./client -e '.[dev]' (again when either pyproject.toml changes)

# The client distribution (client/) and the server's, editable, in one pip
# call so that the server's requirement of the client is met by this one.
# pip shows what it downloads and installs: the first time takes a minute or two.
$(STAMP): pyproject.toml client/pyproject.toml orderengine/client/version.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -e ./client -e '.[dev]'
	@# A .venv from before the split: removing the old orderengine took the
	@# console script the client had just written. Put it back.
	@test -x $(VENV)/bin/orderengine || $(PY) -m pip install --disable-pip-version-check \
	  -q --no-deps --force-reinstall -e ./client
	@touch $@

protos: $(STAMP) ## regenerate orderengine/v1/ from protos/
	PYTHON=$(PY) bash scripts/gen_protos.sh

check-protos: protos ## fail if the committed generated code differs from protos/
	@if [ -n "$$(git status --porcelain -- orderengine/v1)" ]; then \
	  git status --porcelain -- orderengine/v1; \
	  git --no-pager diff --stat -- orderengine/v1; \
	  echo "generated code is stale: run make protos" >&2; \
	  exit 1; \
	fi
	@echo "generated code is up to date"

$(TOOLS_STAMP): tools/package.json tools/package-lock.json
	@mkdir -p $(TOOLS)
	cp tools/package.json tools/package-lock.json $(TOOLS)/
	npm ci --prefix $(TOOLS) --no-audit --no-fund --loglevel=error
	@touch $@

buf-lint: $(TOOLS_STAMP) ## buf lint protos/ with the pinned @bufbuild/buf
	cd protos && ../$(BUF) lint

lint: $(STAMP) ## ruff check, ruff format --check, mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(MYPY_PATHS)

format: $(STAMP) ## ruff format and ruff check --fix: what make lint asks for
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: $(STAMP) ## run the test suite (PYTEST_ARGS=... passes arguments to pytest)
	$(PY) -m pytest $(PYTEST_ARGS)

chaos: $(STAMP) ## run only the fault-injection tests
	$(PY) -m pytest -m chaos $(PYTEST_ARGS)

bench: $(STAMP) ## the benchmark table (BENCH_ARGS=--quick for a short run; see --help)
	$(PY) -m orderengine.local.bench $(BENCH_ARGS)

run: $(STAMP) ## start the whole stack (Ctrl-C stops it; REPLICAS=2 for two of each service; RUN_ARGS=... passes arguments)
	$(PY) -m orderengine.local.stack --replicas $(REPLICAS) $(RUN_ARGS)

node-client: ## install the Node.js client's pinned packages (tests/node; the suite does it when missing)
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error

screenshot: $(STAMP) ## redo docs/page.png from the page test (headless Debian chromium)
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest tests/test_page.py -k confirm $(PYTEST_ARGS)

compose-check: ## validate docker-compose.yml (no engine needed)
	@if docker compose version >/dev/null 2>&1; then \
	  echo "docker compose -f docker-compose.yml config -q"; \
	  docker compose -f docker-compose.yml config -q; \
	elif command -v docker-compose >/dev/null 2>&1; then \
	  echo "docker-compose -f docker-compose.yml config -q"; \
	  docker-compose -f docker-compose.yml config -q; \
	else \
	  echo "neither 'docker compose' nor 'docker-compose' is installed (apt-get install docker-compose)" >&2; \
	  exit 1; \
	fi
	@echo "docker-compose.yml is valid"

K8S := deploy/k8s
K8S_FILES := $(filter-out %/kustomization.yaml,$(wildcard $(K8S)/*.yaml))
# The oldest Kubernetes the manifests are for, and the newest the pinned schemas know.
K8S_VERSIONS := 1.30 1.37

k8s-check: $(STAMP) ## validate the Kubernetes manifests against the API schemas (offline), and what kustomize renders when kubectl is here
	$(VENV)/bin/kubernetes-validate --strict --quiet $(foreach v,$(K8S_VERSIONS),-k $(v)) $(K8S_FILES)
	@if command -v kubectl >/dev/null 2>&1; then \
	  for version in $(K8S_VERSIONS); do \
	    echo "kubectl kustomize $(K8S) | kubernetes-validate --strict --quiet -k $$version -"; \
	    kubectl kustomize $(K8S) | $(VENV)/bin/kubernetes-validate --strict --quiet -k $$version -; \
	  done; \
	else \
	  echo "no kubectl: the kustomization itself is checked by tests/test_k8s.py where it is"; \
	fi
	@echo "$(K8S) is valid"

clean: ## remove .venv, .tools, caches and runtime state (var/, artifacts/)
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache build dist var artifacts *.egg-info
	rm -rf client/build client/*.egg-info
	rm -rf tests/node/node_modules
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
