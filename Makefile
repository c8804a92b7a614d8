# Entry points. `make help` lists them. The venv is built on first use.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml 2>/dev/null | sha256sum | cut -c1-12)

.DEFAULT_GOAL := help
.PHONY: help install run-local smoke test lint format ui bench clean

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

EXECUTOR ?= local
smoke: $(STAMP) ## whole pipeline on small synthetic data, away from real outputs (EXECUTOR=docker: in containers)
ifeq ($(EXECUTOR),docker)
	$(MAKE) --no-print-directory build
	$(RUNNER) $(SUPERVISED) python scripts/smoke.py
else
	PIPELINE_EXECUTOR=local $(PY) scripts/smoke.py
endif

test: $(STAMP) ## run the test suite with coverage
	$(PY) -m pytest --cov --cov-report=term $(PYTEST_ARGS)

lint: $(STAMP) ## ruff lint + format check (pyproject.toml); exits non-zero on any finding
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

ui: $(STAMP) ## serve the MLflow UI for the project's local store on http://127.0.0.1:5000
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --default-artifact-root $(CURDIR)/mlartifacts --host 127.0.0.1 --port 5000

bench: $(STAMP) ## run the benchmarks under bench/ (prints figures, asserts nothing)
	@for b in bench/[!_]*.py; do \
	    echo "== $$b"; \
	    if [ $$b = bench/docker_overhead.py ] && ! docker info >/dev/null 2>&1; then echo "skipped: no Docker daemon"; continue; fi; \
	    BASE_IMAGE=$(BASE_IMAGE) $(PY) $$b || exit 1; \
	done

clean: ## remove scratch state (smoke sandboxes, checkpoints); keeps data, models and MLflow
	rm -rf .smoke checkpoints

# ---- containers: the dvc-runner and one sibling container per stage ---------
# Image tags are content hashes of what goes into them, so a changed recipe
# builds a new image and an unchanged one is reused. Code is mounted, not baked.
BASE_IMAGE ?= pytorch/pytorch:2.9.0-cuda12.8-cudnn9-runtime
image_hash = $(shell cat $(1) | cat - <(echo "$(BASE_IMAGE)") | sha256sum | cut -c1-12)
STAGE_IMAGE := cifar100-stage:$(call image_hash,stages/Dockerfile stages/requirements.txt)
RUNNER_IMAGE := cifar100-runner:$(call image_hash,Dockerfile.dvc-runner scripts/runner-requirements.txt)
COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
DOCKER_SOCK ?= /var/run/docker.sock
export STAGE_IMAGE RUNNER_IMAGE
export PROJECT_DIR := $(CURDIR)
export HOST_UID := $(shell id -u)
export HOST_GID := $(shell id -g)
export DOCKER_GID := $(shell stat -c %g $(DOCKER_SOCK) 2>/dev/null || echo 0)
RUNNER := $(COMPOSE) run --rm dvc-runner
SUPERVISED := python -m runner.supervise  # PID 1 that relays Ctrl-C to dvc and the launcher
.PHONY: build run stage shell up down

build: ## build the stage and dvc-runner images if missing (BASE_IMAGE=... to choose the base)
	@docker image inspect $(STAGE_IMAGE) >/dev/null 2>&1 || docker build --network host \
	    -f stages/Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(STAGE_IMAGE) .
	@docker image inspect $(RUNNER_IMAGE) >/dev/null 2>&1 || docker build --network host \
	    -f Dockerfile.dvc-runner --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(RUNNER_IMAGE) .

run: build ## run the pipeline: dvc repro in the dvc-runner, each stage in its own container
	$(RUNNER) $(SUPERVISED) dvc repro

stage: build ## run one stage and what it needs in containers: make stage STAGE=train
	$(RUNNER) $(SUPERVISED) dvc repro $(STAGE)

shell: build ## a shell in the dvc-runner, at the project's path
	$(RUNNER) bash

up: build ## serve the MLflow UI over the project's store on http://127.0.0.1:5000 (container)
	$(COMPOSE) up -d mlflow

down: ## stop the MLflow UI container
	$(COMPOSE) down

print-stage-image:
	@echo $(STAGE_IMAGE)

# ---- remotes and sync --------------------------------------------------------
# Settings and credentials come from the environment or .env (see .env.example:
# KEY=value lines, no quotes); a non-empty shell value wins over .env, as in the
# scripts. Only the names below are exported to recipes, and only when set; no
# recipe puts one on a command line. With DAGSHUB_* set and no MLFLOW_TRACKING_URI,
# runs go to the DagsHub repo's MLflow with the token as password.
REMOTE_VARS := DAGSHUB_OWNER DAGSHUB_REPO DAGSHUB_USER DAGSHUB_TOKEN DVC_REMOTE_URL \
    AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_DEFAULT_REGION \
    MLFLOW_TRACKING_URI MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD MLFLOW_TRACKING_TOKEN \
    REMOTE_ATTEMPTS REMOTE_RETRY_DELAY_S
$(foreach v,$(REMOTE_VARS),$(if $(filter environment,$(origin $(v))),$(eval SHELL_VALUE_$(v) := $$(value $(v)))))
-include .env
$(foreach v,$(REMOTE_VARS),$(if $(SHELL_VALUE_$(v)),$(eval $(v) := $$(SHELL_VALUE_$(v)))))
ifneq ($(DAGSHUB_OWNER),)
ifeq ($(MLFLOW_TRACKING_URI),)
MLFLOW_TRACKING_URI := https://dagshub.com/$(DAGSHUB_OWNER)/$(DAGSHUB_REPO).mlflow
MLFLOW_TRACKING_USERNAME := $(or $(DAGSHUB_USER),$(DAGSHUB_OWNER))
MLFLOW_TRACKING_PASSWORD := $(DAGSHUB_TOKEN)
endif
endif
REMOTE_SET := $(foreach v,$(REMOTE_VARS),$(if $($(v)),$(v)))
ifneq ($(REMOTE_SET),)
export $(REMOTE_SET)
endif
.PHONY: dagshub push pull git-sync mlflow-check

dagshub: $(STAMP) ## point DVC's default remote at DagsHub (or DVC_REMOTE_URL) from .env; keys to .dvc/config.local
	$(PY) -m scripts.dagshub_setup

push: $(STAMP) ## push DVC data, outputs and run-cache to the default remote (REMOTE=name for another)
	$(PY) -m scripts.remote push $(if $(REMOTE),--remote $(REMOTE))

pull: $(STAMP) ## pull DVC data, outputs and run-cache (after a fresh clone, `dvc repro` is then a no-op)
	$(PY) -m scripts.remote pull $(if $(REMOTE),--remote $(REMOTE))

git-sync: $(STAMP) ## commit dvc.lock, params and reports (only those) and push to origin; refuses until pushed
	$(PY) -m scripts.git_sync

mlflow-check: $(STAMP) ## check the MLflow server in MLFLOW_TRACKING_URI answers and accepts the credentials
	$(PY) -m scripts.remote check

# A wrong MLflow password must stop the run before `dvc repro` deletes a stage's outputs.
run-local: mlflow-check

# ---- training benchmarks -----------------------------------------------------
# Each recipe through the real train and evaluate stages, in a scratch project;
# runs go to the MLflow experiment `bench-train`. Without CUDA the recipes shrink
# to a CPU-sized run (--tiny); BENCH_TRAIN_ARGS passes flags, e.g.
# BENCH_TRAIN_ARGS="--recipes fast --archive /data/cifar-100-python.tar.gz".
.PHONY: bench-train
bench-train: $(STAMP) ## train each recipe; time-to-accuracy table in reports/bench_train.{json,md}
	PIPELINE_EXECUTOR=local $(PY) scripts/bench_train.py $(BENCH_TRAIN_ARGS)

# ---- serving: the registry's champion over HTTP (serve/) ----------------------
# Settings: params.yaml's serve: section, overridden by SERVE_MODEL (alias or
# version), SERVE_HOST/SERVE_PORT (127.0.0.1:8080), SERVE_POLL_INTERVAL_S,
# SERVE_MAX_BATCH_SIZE, SERVE_MAX_WAIT_MS, SERVE_DEVICE; MLFLOW_TRACKING_URI
# picks the registry (default: the project's mlflow.db).
SERVE_PARAMS ?= params.yaml
export SERVE_PARAMS
SERVE_GPU = $(shell docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia && echo -f serve/compose.gpu.yml)
.PHONY: serve rollback serve-smoke
serve: $(STAMP) ## serve models:/<model>@champion on http://127.0.0.1:8080 (EXECUTOR=docker: in the stage image)
ifeq ($(EXECUTOR),docker)
	$(MAKE) --no-print-directory build
	$(COMPOSE) -f docker-compose.yml $(SERVE_GPU) run --rm --name cifar100-serve-$(or $(SERVE_PORT),8080) serve
else
	$(PY) -m serve --params $(SERVE_PARAMS)
endif

rollback: $(STAMP) ## move the champion alias back to the previous champion; servers follow within their poll
	$(PY) scripts/rollback.py --params $(SERVE_PARAMS)

serve-smoke: $(STAMP) ## smoke model in a sandbox, served; real PNGs, alias moved, reload checked; one JSON line
	PIPELINE_EXECUTOR=local $(PY) scripts/serve_smoke.py $(SERVE_SMOKE_ARGS)
