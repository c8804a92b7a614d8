# Entry points. `make help` lists them. The venv is built on first use.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml 2>/dev/null | sha256sum | cut -c1-12)

.DEFAULT_GOAL := help
.PHONY: help install run-local smoke test ui bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP) ## create .venv with pinned dependencies (once)

# ---- pipeline, without containers -------------------------------------------
run-local: $(STAMP) ## run the pipeline (dvc repro) directly on this machine
	PIPELINE_EXECUTOR=local dvc repro

smoke: $(STAMP) ## whole pipeline on small synthetic data, away from real outputs; prints one JSON line
	PIPELINE_EXECUTOR=$(or $(EXECUTOR),local) $(PY) scripts/smoke.py

test: $(STAMP) ## run the test suite with coverage
	$(PY) -m pytest --cov --cov-report=term $(PYTEST_ARGS)

ui: $(STAMP) ## serve the MLflow UI for the project's local store on http://127.0.0.1:5000
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --default-artifact-root $(CURDIR)/mlartifacts --host 127.0.0.1 --port 5000

bench: $(STAMP) ## run the benchmarks under bench/ (prints figures, asserts nothing)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean: ## remove scratch state (smoke sandboxes, checkpoints); keeps data, models and MLflow
	rm -rf .smoke checkpoints
