# Entry points. `make help` lists them. The venv is built on first use.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
# The dependency lock in layers, each file holding only what its layer adds (see `make lock`).
LAYERS := stages serve automation dev
LOCKS := $(LAYERS:%=env/%.lock)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCKS) 2>/dev/null | sha256sum | cut -c1-12)

.DEFAULT_GOAL := help
.PHONY: help install run-local smoke test test-fast docs lint format ui bench clean

# ---- start here ---------------------------------------------------------------

# `make help`: each `# ---- title ----` line is a heading, each `target: ## text` a line under it.
help: ## list the targets, by section
	@awk '/^#+ ---- / { sub(/^#+ ---- /, ""); sub(/ *-+$$/, ""); printf "\n%s\n", $$0; next } \
	    /^[a-zA-Z0-9_-]+:.*## / { split($$0, a, /:.*## /); printf "  make %-18s %s\n", a[1], a[2] }' $(MAKEFILE_LIST)

# Exactly the lock, every layer (versions and sha256 hashes of every package, dev tools too),
# then the project itself without resolving anything.
$(STAMP): pyproject.toml $(LOCKS)
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || echo "make install: warning:" \
	    "env/*.lock is resolved for CPython 3.11 (as in the images) and $(PY) is $$($(PY) -V)"
	$(PY) -m pip install -q --require-hashes --no-deps $(LOCKS:%=-r %)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP) ## create .venv from every layer of the dependency lock, env/*.lock (once)

# ---- pipeline, without containers -------------------------------------------
run-local: $(STAMP) ## run the pipeline (dvc repro) directly on this machine
	PIPELINE_EXECUTOR=local dvc repro

# ---- first run, tests, docs -----------------------------------------------------
EXECUTOR ?= local
smoke: $(STAMP) ## whole pipeline on small synthetic data, away from real outputs (EXECUTOR=docker: in containers)
ifeq ($(EXECUTOR),docker)
	$(MAKE) --no-print-directory build
	PIPELINE_NO_SECRETS=1 $(RUNNER) python -m smoke.pipeline
else
	PIPELINE_EXECUTOR=local $(PY) -m smoke.pipeline
endif

test: $(STAMP) ## run the test suite with coverage (the 85% floor applies to the full run only)
	$(PY) -m pytest --cov --cov-report=term $(if $(PYTEST_ARGS),--cov-fail-under=0) $(PYTEST_ARGS)

test-fast: $(STAMP) ## unit + integration tests without Docker, slow or fault cases; no coverage floor
	$(PY) -m pytest -m "not docker and not slow and not faults" tests/unit tests/integration $(PYTEST_ARGS)

docs: $(STAMP) ## build the docs site into site/ (mkdocs --strict: a dead link or a page not in the nav fails)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

lint: $(STAMP) ## ruff lint + format check, the import layers and mypy (pyproject.toml); non-zero on any finding
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# ---- tools ---------------------------------------------------------------------
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
# The default base gives the NVIDIA driver hookup; torch and its CUDA libraries come from the lock.
BASE_IMAGE ?= nvidia/cuda:13.0.1-runtime-ubuntu22.04
image_hash = $(shell cat $(1) 2>/dev/null | cat - <(echo "$(BASE_IMAGE)") | sha256sum | cut -c1-12)
# The stage image holds the stages layer (env/stages.lock); the runner is built on it and needs
# nothing more; the serve image adds the serve layer (env/serve.lock) on top of the stage image.
STAGE_IMAGE := cifar100-stage:$(call image_hash,containers/stage.Dockerfile env/stages.lock)
RUNNER_IMAGE := cifar100-runner:$(shell cat Dockerfile.dvc-runner <(echo "$(STAGE_IMAGE)") | sha256sum | cut -c1-12)
SERVE_IMAGE := cifar100-serve:$(shell cat containers/serve.Dockerfile env/serve.lock <(echo "$(STAGE_IMAGE)") | sha256sum | cut -c1-12)
COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
DOCKER_SOCK ?= /var/run/docker.sock
export STAGE_IMAGE RUNNER_IMAGE SERVE_IMAGE
export PROJECT_DIR := $(CURDIR)
export HOST_UID := $(shell id -u)
export HOST_GID := $(shell id -g)
export DOCKER_GID := $(shell stat -c %g $(DOCKER_SOCK) 2>/dev/null || echo 0)
# runner/compose-run.sh: a fresh dvc-runner per command; HUP/INT/TERM stop it and its stage cleanly.
RUNNER := runner/compose-run.sh $(COMPOSE) --
GUARDED := python -m runner.guard  # one run per project; clears locks that killed runners left
.PHONY: build build-serve run stage shell up down

build: ## build the stage and dvc-runner images if missing (BASE_IMAGE=... to choose the base)
	@docker image inspect $(STAGE_IMAGE) >/dev/null 2>&1 || docker build --network host \
	    -f containers/stage.Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(STAGE_IMAGE) .
	@docker image inspect $(RUNNER_IMAGE) >/dev/null 2>&1 || docker build --network host \
	    -f Dockerfile.dvc-runner --build-arg STAGE_IMAGE=$(STAGE_IMAGE) -t $(RUNNER_IMAGE) .

build-serve: build ## build the serve image (the stage image + the serve layer) if missing
	@docker image inspect $(SERVE_IMAGE) >/dev/null 2>&1 || docker build --network host \
	    -f containers/serve.Dockerfile --build-arg STAGE_IMAGE=$(STAGE_IMAGE) -t $(SERVE_IMAGE) .

run: build ## run the pipeline: dvc repro in the dvc-runner, each stage in its own container
	$(RUNNER) $(GUARDED) dvc repro

stage: build ## run one stage and what it needs in containers: make stage STAGE=train
	$(RUNNER) $(GUARDED) dvc repro $(STAGE)

shell: build ## a shell in the dvc-runner, at the project's path
	$(COMPOSE) run --rm dvc-runner bash

up: build ## serve the MLflow UI over the project's store on http://127.0.0.1:5000 (container)
	$(COMPOSE) up -d mlflow

down: ## stop the MLflow UI container
	$(COMPOSE) down

print-stage-image:
	@echo $(STAGE_IMAGE)

print-runner-image:
	@echo $(RUNNER_IMAGE)

print-serve-image:
	@echo $(SERVE_IMAGE)

# ---- remotes and sync --------------------------------------------------------
# Settings and credentials come from the environment or .env (see .env.example:
# KEY=value lines, no quotes); a non-empty shell value wins over .env, as in the
# scripts. Only the names below are exported to recipes, and only when set; no
# recipe puts one on a command line. With DAGSHUB_* set and no MLFLOW_TRACKING_URI,
# runs go to the DagsHub repo's MLflow with the token as password.
# runner/credentials.py REMOTE_VARS is the list; tests/unit/test_credentials.py checks this copy.
REMOTE_VARS := DAGSHUB_OWNER DAGSHUB_REPO DAGSHUB_USER DAGSHUB_TOKEN DVC_REMOTE_URL \
    AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_DEFAULT_REGION \
    MLFLOW_S3_ENDPOINT_URL MLFLOW_TRACKING_URI MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD \
    MLFLOW_TRACKING_TOKEN REMOTE_ATTEMPTS REMOTE_RETRY_DELAY_S
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
	$(PY) -m ops.dagshub_setup

push: $(STAMP) ## push DVC data, outputs and run-cache to the default remote (REMOTE=name for another)
	$(PY) -m ops.remote push $(if $(REMOTE),--remote $(REMOTE))

pull: $(STAMP) ## pull DVC data, outputs and run-cache (after a fresh clone, `dvc repro` is then a no-op)
	$(PY) -m ops.remote pull $(if $(REMOTE),--remote $(REMOTE))

git-sync: $(STAMP) ## commit dvc.lock, params and reports (only those) and push to origin; refuses until pushed
	$(PY) -m ops.git_sync

mlflow-check: $(STAMP) ## check the MLflow server in MLFLOW_TRACKING_URI answers and accepts the credentials
	$(PY) -m ops.remote check

# A wrong MLflow password must stop the run before `dvc repro` deletes a stage's outputs.
run-local: mlflow-check

# ---- training benchmarks -----------------------------------------------------
# Each recipe through the real train and evaluate stages, in a scratch project;
# runs go to the MLflow experiment `bench-train`. Without CUDA the recipes shrink
# to a CPU-sized run (--tiny); BENCH_TRAIN_ARGS passes flags, e.g.
# BENCH_TRAIN_ARGS="--recipes fast --archive /data/cifar-100-python.tar.gz".
.PHONY: bench-train
bench-train: $(STAMP) ## train each recipe; time-to-accuracy table in reports/bench_train.{json,md}
	PIPELINE_EXECUTOR=local $(PY) -m bench.train $(BENCH_TRAIN_ARGS)

# ---- fault matrix (issue 12) -------------------------------------------------
# The tests marked `faults` (tests/faults; `make test` runs them too): each fault in a copy
# of one tiny prepared sandbox, judged. Ends with one JSON line {"faults", "clean", "unclean"
# (failed test ids), "skipped", "seconds"}. Docker cases use $$BASE_IMAGE, else the offline base
# (built once); they skip, saying why, without a daemon. About 10 min on 2 busy cores.
# PYTEST_ARGS selects and shows, e.g. PYTEST_ARGS="-k 'sigint or docker_kill' -v".
.PHONY: bench-faults
bench-faults: $(STAMP) ## run the fault matrix: every fault must end in one line and leave nothing behind
	$(PY) -m pytest -m faults tests/faults $(PYTEST_ARGS)

# ---- lineage: params checked before DVC templates them; `make reproduce` -----
# DVC resolves `recipes.${train.recipe}` before any stage runs: check params.yaml
# first so a misspelt key is named (`params.yaml: unknown key train.recipee`).
.PHONY: check-params check-params-image
check-params: $(STAMP) ## check params.yaml (names a misspelt or bad key before DVC's templating error)
	@$(PY) -m ops.check_params params.yaml
run-local: check-params

# The same check for `make run`/`make stage`, in the stage image (no host venv needed).
check-params-image: build
	@docker run --rm --network none --user $(HOST_UID):$(HOST_GID) -v "$(CURDIR)":"$(CURDIR)":ro -w "$(CURDIR)" \
	    $(STAGE_IMAGE) python -m ops.check_params params.yaml
run stage: check-params-image

# ---- the committed baseline: dvc.lock and reports of a real run (ops/baseline.py) ----
# A fresh clone holds them, so `dvc status`, `make compare` and CI's PR comment compare
# against a real CIFAR-100 run. CIFAR100_ARCHIVE (a copy of the official archive) stands in
# for the download; its content, not its bytes, is checked.
.PHONY: check-baseline compare baseline
BASE ?= HEAD
check-baseline: $(STAMP) ## stages that no longer match the committed dvc.lock + data hashes on a local CIFAR-100 copy; one JSON line
	@$(PY) -m ops.baseline check
compare: $(STAMP) ## `dvc metrics diff` of this workspace against the committed baseline (BASE=HEAD), as CI comments on PRs
	@$(PY) -m dvc metrics diff --all --md $(BASE)
baseline: $(STAMP) ## rerun the pipeline (EXECUTOR=local|docker) and commit dvc.lock + reports as the new baseline
	PIPELINE_EXECUTOR=$(EXECUTOR) $(PY) -m ops.baseline refresh

# Rebuild a registered version from its own record (ops/reproduce.py): its
# commit in a scratch git worktree, its settings, its data by DVC hash; one JSON verdict.
.PHONY: reproduce
MODEL ?= cifar100-classifier
reproduce: $(STAMP) ## rebuild a registered version and compare weights: make reproduce VERSION=3 (or ALIAS=champion)
	@test -n "$(VERSION)$(ALIAS)" || { echo "reproduce: error: say which version: VERSION=n or ALIAS=champion" >&2; exit 2; }
	$(PY) -m ops.reproduce --model "$(MODEL)" $(if $(ALIAS),--alias "$(ALIAS)",--version "$(VERSION)")

# ---- one pinned environment in layers (env/<layer>.lock) -------------------
# pyproject.toml's dependencies (stages) and extras serve, automation, dev, each layer over the
# ones before it. env/lock.py resolves them ALL TOGETHER with pip-compile (every version and
# sha256 pinned, so a package has one version in every layer), then writes each layer's file
# with ONLY the packages it adds over the layers below: a package is in exactly one file.
# Install a layer with every file up to it (pip install --require-hashes --no-deps -r env/stages.lock
# -r env/serve.lock ...). `make install` installs all four; the stage image (and the runner built
# on it) and the offline base image env/stages.lock; the serve image adds env/serve.lock.
# Only env/stages.lock is a dvc.yaml dep: an upper layer's change reruns no stage.
# Resolved on Linux x86_64 with CPython 3.11.
.PHONY: lock
lock: ## re-resolve env/<layer>.lock from pyproject.toml (versions and hashes); then make install, make build
	@test -x $(VENV)/bin/pip-compile || { echo "make lock: $(VENV)/bin/pip-compile missing: make install first"; exit 1; }
	$(PY) env/lock.py

# ---- sweeps: a grid of experiments on DVC's queue (sweep/, runner/gpu_lease.py) ----
# GRID uses DVC's -S sweep syntax, items separated by spaces (default: params.yaml
# `sweep:`); JOBS defaults to the visible GPUs (1 without). Each experiment leases
# PIPELINE_GPUS_PER_RUN GPUs (default 1) under PIPELINE_LOCK_DIR; the Docker runner
# cannot see the GPUs, so it is told the host's pool (PIPELINE_GPU_POOL). EXECUTOR=k8s:
# one worker per experiment (JOBS to cap it), each stage a Job asking the cluster for its GPU.
GRID ?=
JOBS ?=
PIPELINE_LOCK_DIR ?= /tmp/cifar100-locks
HOST_GPU_POOL := $(shell nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | paste -sd, -)
SWEEP_ARGS = $(if $(GRID),--grid '$(GRID)') $(if $(JOBS),--jobs $(JOBS))
SWEEP_RUNNER = $(COMPOSE) run --rm -v $(PIPELINE_LOCK_DIR):$(PIPELINE_LOCK_DIR) -e PIPELINE_LOCK_DIR=$(PIPELINE_LOCK_DIR) \
    -e PIPELINE_GPU_POOL=$(or $(PIPELINE_GPU_POOL),$(HOST_GPU_POOL)) -e PIPELINE_GPUS_PER_RUN dvc-runner
.PHONY: sweep sweep-report sweep-smoke promote

sweep: $(STAMP) ## run a grid on DVC's queue: GRID="recipes.fast.lr=0.2,0.4 ..." JOBS=N EXECUTOR=docker|k8s; report at the end
ifeq ($(EXECUTOR),docker)
	$(MAKE) --no-print-directory build
	@mkdir -p $(PIPELINE_LOCK_DIR) && chmod 1777 $(PIPELINE_LOCK_DIR) 2>/dev/null || true
	$(SWEEP_RUNNER) python -m sweep run $(SWEEP_ARGS)
else ifeq ($(EXECUTOR),k8s)
	PIPELINE_EXECUTOR=k8s $(PY) -m sweep run $(SWEEP_ARGS)
else
	PIPELINE_EXECUTOR=local $(PY) -m sweep run $(SWEEP_ARGS)
endif

sweep-report: $(STAMP) ## table + plots of the last sweep: reports/sweep.md, reports/sweep.png
	$(PY) -m sweep report

promote: $(STAMP) ## apply a sweep experiment (EXP=name), commit it, run the register gate (may move champion)
	@test -n "$(EXP)" || { echo "make promote: set EXP=<experiment name> (see reports/sweep.md)"; exit 2; }
ifeq ($(EXECUTOR),docker)
	$(MAKE) --no-print-directory build
	$(RUNNER) python -m sweep promote $(EXP)
else
	PIPELINE_EXECUTOR=local $(PY) -m sweep promote $(EXP)
endif

sweep-smoke: $(STAMP) ## a sweep of 5 tiny experiments (2 workers) in a sandbox; one JSON line
	$(PY) -m smoke.sweep --executor $(EXECUTOR)

# ---- serving: the registry's champion over HTTP (serve/) ----------------------
# Settings: params.yaml's serve: section, overridden by SERVE_MODEL (alias or
# version), SERVE_HOST/SERVE_PORT (127.0.0.1:8080), SERVE_POLL_INTERVAL_S,
# SERVE_MAX_BATCH_SIZE, SERVE_MAX_WAIT_MS, SERVE_DEVICE, SERVE_DRIFT_WINDOW,
# SERVE_TORCH_THREADS (serve/settings.py ServeEnv); MLFLOW_TRACKING_URI
# picks the registry (default: the project's mlflow.db).
SERVE_PARAMS ?= params.yaml
export SERVE_PARAMS
SERVE_GPU = $(shell docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia && echo -f containers/compose.gpu.yml)
.PHONY: serve rollback serve-smoke ab-report ab-promote bench-ab ab-smoke
serve: $(STAMP) ## serve models:/<model>@champion on http://127.0.0.1:8080 (EXECUTOR=docker: in the serve image)
ifeq ($(EXECUTOR),docker)
	$(MAKE) --no-print-directory build-serve
	$(COMPOSE) -f docker-compose.yml $(SERVE_GPU) run --rm --name cifar100-serve-$(or $(SERVE_PORT),8080) serve
else
	$(PY) -m serve --params $(SERVE_PARAMS)
endif

rollback: $(STAMP) ## move the champion alias back to the previous champion; servers follow within their poll
	$(PY) -m ops.rollback --params $(SERVE_PARAMS)

ab-report: $(STAMP) ## A/B test from the feedback store: top-1 per variant, mSPRT verdict; reports/ab/{report.json,accuracy.png}
	$(PY) -m ops.ab_report --params $(SERVE_PARAMS)

ab-promote: $(STAMP) ## move champion to the challenger only on a `promote` verdict; tags, MLflow run, notification
	$(PY) -m flows.ab_promote --params $(SERVE_PARAMS)

bench-ab: $(STAMP) ## A/A false-promotion rate and power of the A/B test, and the serving cost of ab/shadow (a few minutes; one JSON line)
	$(PY) -m bench.ab

serve-smoke: $(STAMP) ## smoke model in a sandbox, served; real PNGs, alias moved, reload checked; one JSON line
	PIPELINE_EXECUTOR=local $(PY) -m smoke.serve $(SERVE_SMOKE_ARGS)

ab-smoke: $(STAMP) ## A/B end to end in a sandbox: 2 variants, sticky keys, feedback, report, promote, guardrail trip, fuzz; one JSON line
	PIPELINE_EXECUTOR=local $(PY) -m smoke.ab $(if $(KEEP),--keep)

# ---- drift monitoring, Prometheus and Grafana --------------------------------
# The reference profile is the `profile` stage's output (reports/reference_profile.json,
# logged with each registered model as extra_files/reference_profile.json).
.PHONY: drift-report bench-drift monitoring-up monitoring-down monitoring-check guardrail
PROFILE ?= reports/reference_profile.json
DRIFT_OUT ?= reports/drift
drift-report: $(STAMP) ## IMAGES=DIR|FILE.npy against the reference profile: reports/drift/drift_report.{html,png,json}
	@test -n "$(IMAGES)" || { echo "drift-report: set IMAGES=DIR (PNG/JPEG files) or IMAGES=FILE.npy (uint8 N,32,32,3)"; exit 2; }
	$(PY) -m ops.drift_report --images "$(IMAGES)" --profile "$(PROFILE)" --out "$(DRIFT_OUT)" \
	    $(if $(wildcard models/model.pt),--model models)

bench-drift: $(STAMP) ## false-alarm and detection rates of the drift monitor on real CIFAR-100 (CIFAR100_DIR=...)
	$(PY) bench/drift.py

monitoring-up: ## Prometheus on 127.0.0.1:9090, Alertmanager on :9093, Grafana on :3000, scraping the server on 127.0.0.1:8080
	$(COMPOSE) --profile monitoring up -d prometheus alertmanager grafana

monitoring-down: ## stop Prometheus, Alertmanager and Grafana
	$(COMPOSE) --profile monitoring rm -fsv prometheus alertmanager grafana

monitoring-check: ## promtool/amtool: check the Prometheus and Alertmanager configs and rules, run the rules' unit tests
	promtool check config monitoring/prometheus.yml
	promtool test rules monitoring/tests/alerts_test.yml monitoring/tests/guardrails_test.yml
	amtool check-config monitoring/alertmanager.yml

guardrail: $(STAMP) ## Alertmanager's webhook on 127.0.0.1:9097: a failing challenger's share -> 0, a failing new champion rolled back
	$(PY) -m flows.guardrail_server --params $(SERVE_PARAMS)

# ---- Kubernetes and the team MLflow server (deploy/, docs/deploy.md) --------
# deploy/: a kustomize base and the overlays cpu and gpu. k8s-render needs only kubectl (its
# built-in kustomize); k8s-run needs a kubeconfig that reaches a cluster, else it prints, in one
# line, what it would apply. The team MLflow server: compose profile `team` (PostgreSQL + S3).
.PHONY: k8s-render k8s-smoke k8s-run team-up team-down
K8S_OVERLAY ?= cpu
k8s-render: $(STAMP) ## render every deploy/ overlay (and sample stage Jobs) into .k8s-render/ for review
	$(PY) -m ops.k8s render --out .k8s-render

KUBELET ?= process
k8s-smoke: $(STAMP) ## smoke pipeline with PIPELINE_EXECUTOR=k8s on kmock vs local (KUBELET=docker: pods as stage containers); one JSON line
ifeq ($(KUBELET),docker)
	$(MAKE) --no-print-directory build
	$(PY) -m smoke.k8s --image $(STAGE_IMAGE) $(if $(KEEP),--keep)
else
	$(PY) -m smoke.k8s $(if $(KEEP),--keep)
endif

k8s-run: $(STAMP) ## apply deploy/overlays/K8S_OVERLAY (cpu) with a fresh runner Job; no cluster: what it would apply
	$(PY) -m ops.k8s run --overlay $(K8S_OVERLAY)

team-up: build-serve ## team MLflow on PostgreSQL + S3 on 127.0.0.1:5001 (POSTGRES_PASSWORD, AWS_*, TEAM_MLFLOW_ARTIFACTS)
	$(COMPOSE) --profile team up -d team-postgres team-mlflow

team-down: ## stop the team MLflow server and its PostgreSQL (the database volume stays)
	$(COMPOSE) --profile team rm -fs team-postgres team-mlflow

# ---- automation above DVC (flows/): Prefect, Airflow, notifications, git hooks ----
# Settings from the environment or .env (AUTOMATION_*, see .env.example); the
# steps are the targets above (pull, run/run-local, push, git-sync), never a copy
# of the DAG. Airflow lives in its own venv (.ci/setup-airflow.sh).
.PHONY: retrain schedule hooks automation-smoke airflow-venv
retrain: $(STAMP) ## run the Prefect flow once: pull, reproduce (docker; AUTOMATION_EXECUTOR=local), push, git sync, report
	$(PY) -m flows.pipeline

schedule: $(STAMP) ## serve the nightly Prefect deployment here (AUTOMATION_CRON) + the drift trigger (AUTOMATION_DRIFT_URL)
	$(PY) -m flows.serve

hooks: $(STAMP) ## opt-in pre-push hook: `git push` first pushes the DVC outputs the pushed commits' dvc.lock names
	$(PY) -m flows.hooks install

airflow-venv: ## build .venv-airflow (Airflow 3, kept apart from .venv; see docs/automation.md)
	.ci/setup-airflow.sh

automation-smoke: $(STAMP) airflow-venv ## Prefect flow + Airflow `dags test` on the smoke sandbox, one injected fault; one JSON line
	$(PY) -m smoke.automation $(if $(filter docker,$(EXECUTOR)),--executor docker)
