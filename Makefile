# One entry point for the backend, the admin UI and the chart. See DEVELOPMENT.md.
#
#   make serve                 embedded service on http://127.0.0.1:8000 (SQLite, dev auth)
#   make serve HOST=0.0.0.0 PORT=9000
#   make test                  the full CI gate (scripts/test.sh); PYTEST_ARGS='-k x' narrows pytest

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
export VENV

LINT_PATHS := src tests migrations scripts examples

# Passed to `countersign serve` only when set.
HOST ?=
PORT ?=
SERVE_ARGS ?=
# Passed to bench/run.py (`make bench BENCH_ARGS="--seconds 5"`; see bench/README.md).
BENCH_ARGS ?=

.PHONY: help all install serve ui services lint format typecheck test migrate bench client helm-lint clean distclean

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

all: lint typecheck test ## lint, typecheck and the full test gate

install: ## create .venv and install the project (only when pyproject.toml changed; FORCE=1 to force)
	@scripts/bootstrap.sh

serve: install ## run the embedded service (SQLite in ., dev auth, in-process worker); builds the UI when stale
	@scripts/build-ui.sh --if-stale
	exec $(BIN)/countersign serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT)) $(SERVE_ARGS)

ui: ## build the admin UI into src/countersign/static/admin
	@scripts/build-ui.sh

services: ## make sure the local PostgreSQL and Redis used by the tests are running
	@scripts/ensure-services.sh

lint: install ## ruff check + ruff format --check
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

format: install ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

typecheck: install ## mypy (strict; files from pyproject.toml)
	$(BIN)/mypy

test: ## the CI gate: services, lint, typecheck, pytest, admin UI when present
	scripts/test.sh

migrate: install ## apply database migrations to COUNTERSIGN_DATABASE_URL
	$(BIN)/countersign migrate

bench: install ## run the benchmarks (bench/run.py) when they exist
	@if [ -f bench/run.py ]; then $(BIN)/python bench/run.py $(BENCH_ARGS); else echo "bench/run.py does not exist yet; nothing to run"; fi

client: ## regenerate the admin UI's API client when the admin UI exists
	@if [ -x admin-ui/scripts/generate-client.sh ]; then admin-ui/scripts/generate-client.sh; \
	elif [ -x scripts/generate-client.sh ]; then scripts/generate-client.sh; \
	else echo "no generate-client.sh yet; nothing to do"; fi

helm-lint: install ## lint, render and validate the Helm chart with every helm/countersign/ci/*-values.yaml
	$(BIN)/pytest -n 2 tests/operations/test_helm_chart.py

clean: ## remove caches and build output (keeps .venv and local databases)
	rm -rf build dist src/countersign/static/admin .mypy_cache .ruff_cache .pytest_cache .hypothesis .coverage htmlcov
	find . -path ./$(VENV) -prune -o -path ./admin-ui/node_modules -prune -o \
		\( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 | xargs -0 rm -rf

distclean: clean ## clean, and remove .venv too
	rm -rf $(VENV)
