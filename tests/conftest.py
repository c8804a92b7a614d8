"""Shared fixtures: tiny synthetic params and datasets, built once per session."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from smoke.sandbox import merge
from stages.lib import params

ROOT = Path(__file__).resolve().parent.parent

# Small enough for 2 CPU cores, big enough that the small net learns the classes.
TINY = {
    "data": {"source": "synthetic", "synthetic": {"train_per_class": 12, "test_per_class": 4}},
    "preprocess": {"val_fraction": 0.25},
    "recipes": {"fast": {"model": "small", "epochs": 2, "batch_size": 64, "lr": 0.05}},
    "train": {"recipe": "fast", "compile": "off"},
    "validate": {"max_train_test_duplicates": 0},
    "evaluate": {"batch_size": 256},
}


def pytest_configure(config):
    """The processes tests signal must see what a terminal gives them. A suite started in the
    background (`pytest &` from a script, some CI runners) inherits SIGINT (and maybe SIGTERM,
    SIGHUP) ignored; children inherit that, and a shell cannot trap a signal ignored at its
    start, so `make run`'s wrapper would never see the Ctrl-C a test sends it."""
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    defaults[signal.SIGHUP] = signal.SIG_DFL
    for sig, handler in defaults.items():
        if signal.getsignal(sig) is signal.SIG_IGN:
            signal.signal(sig, handler)


@pytest.fixture(autouse=True)
def _mlflow_uris_do_not_leak():
    """mlflow.set_tracking_uri/set_registry_uri also write MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI
    into os.environ, and the registry URI stays a process global: put both back after each test,
    so one test's store never becomes the next one's registry."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield
    for key in [k for k in os.environ if k.startswith("MLFLOW_") and k not in saved]:
        del os.environ[key]
    os.environ.update(saved)
    if "mlflow" in sys.modules:
        from mlflow.tracking import _model_registry, _tracking_service

        _model_registry.utils._registry_uri = None
        _tracking_service.utils._tracking_uri = None


@pytest.fixture(scope="session")
def base_params() -> dict:
    """The committed params.yaml as a plain dict (copy before changing)."""
    return params.read_yaml(ROOT / "params.yaml")


def write_params(path: Path, raw: dict) -> Path:
    with open(path, "w") as f:
        YAML(typ="safe", pure=True).dump(raw, f)
    return path


@pytest.fixture
def tiny_raw(base_params) -> dict:
    return merge(copy.deepcopy(base_params), TINY)


@pytest.fixture
def project(tmp_path, monkeypatch, tiny_raw) -> Path:
    """A scratch project dir (cwd) with a tiny synthetic params.yaml; MLflow's store lands here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PIPELINE_EXECUTOR", "local")
    write_params(tmp_path / "params.yaml", tiny_raw)
    return tmp_path


def _daemon_up() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def base_image() -> str:
    """$BASE_IMAGE, else the offline base (built once, ~5 min, reused by name). Docker tests
    skip, saying why, where no daemon answers or no base can be built (it needs root); in CI they fail."""
    if not _daemon_up():
        if os.environ.get("CI"):
            pytest.fail("CI must reach a Docker daemon (.ci/start-docker.sh)")
        pytest.skip("no Docker daemon reachable (start one, e.g. .ci/start-docker.sh)")
    if os.environ.get("BASE_IMAGE"):
        return os.environ["BASE_IMAGE"]
    built = subprocess.run(
        [str(ROOT / "containers" / "build-offline-base-image.sh")], capture_output=True, text=True, timeout=1200
    )
    if built.returncode or not built.stdout.strip():
        why = (built.stderr.strip().splitlines() or ["no output"])[-1]
        if os.environ.get("CI"):
            pytest.fail(f"containers/build-offline-base-image.sh failed: {why}")
        pytest.skip(f"no BASE_IMAGE and the offline base could not be built ({why}); set BASE_IMAGE=<image>")
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def stage_image(base_image) -> str:
    """The stage image on `base_image`, built by `make build` if missing."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "-C", str(ROOT), f"BASE_IMAGE={base_image}", "build"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    tag = subprocess.run(
        ["make", "--no-print-directory", "-s", "-C", str(ROOT), f"BASE_IMAGE={base_image}", "print-stage-image"],
        capture_output=True,
        text=True,
        check=True,
    )
    return tag.stdout.strip()
