"""A real Prometheus scrapes the real model server (`python -m serve`); the drift alert fires
when corrupted images arrive.

The model and its reference profile are the pipeline's own: the session's trained project is
taken through evaluate, profile and register into a local MLflow store, and the server loads
`champion` from there, drift monitor included (a window of WINDOW images).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from stages.lib import tracking
from stages.lib.dataset import load_arrays
from tests.integration.conftest import run_stage
from tests.support import prometheus
from tests.support.servers import Server, free_port, launch, wait_ready

WINDOW = 100  # the tiny test split has 400 images


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        lines = resp.read().decode().splitlines()
    # The largest over the variants' series (cifar100_drift_detected{variant=..,version=..}).
    return max(float(line.split()[-1]) for line in lines if line.startswith((name + " ", name + "{")))


def registered_project(template: Path, dest: Path) -> Path:
    """A copy of the trained project with its model evaluated, profiled and registered (champion)."""
    shutil.copytree(template, dest)
    old, saved = os.getcwd(), {k: os.environ.pop(k, None) for k in ("MLFLOW_TRACKING_URI", "PIPELINE_EXECUTOR")}
    os.chdir(dest)
    try:
        for name in ("evaluate", "profile", "register"):
            assert run_stage(name) == 0, name
    finally:
        os.chdir(old)
        os.environ.update({k: v for k, v in saved.items() if v is not None})
    return dest


def launch_server(workdir: Path, project: Path, window: int) -> tuple[Server, callable]:
    """`python -m serve` on the project's champion, on a free port, ready; and
    post(images uint8 (N, 32, 32, 3)) -> the response JSON."""
    port = free_port()
    env = {
        "MLFLOW_TRACKING_URI": tracking.local_store(project)[0],
        "SERVE_PORT": str(port),
        "SERVE_DRIFT_WINDOW": str(window),
    }
    cmd = [sys.executable, "-m", "serve", "--params", str(project / "params.yaml")]
    server = launch("serve", cmd, workdir, env, f"http://127.0.0.1:{port}")
    wait_ready(server, "/ready")

    def post(images: np.ndarray) -> dict:
        data = json.dumps({"images": images.tolist()}).encode()
        req = urllib.request.Request(server.url + "/predict", data, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    return server, post


@pytest.fixture
def stack(trained_template, tmp_path):
    """(server, post, prometheus) on the session's trained project; both stopped by PID afterwards."""
    prometheus.binary("prometheus")  # skip before starting anything where it is missing
    project = registered_project(trained_template, tmp_path / "project")
    server, post = launch_server(tmp_path, project, WINDOW)
    try:
        prom = prometheus.start(tmp_path / "prometheus", server.url.removeprefix("http://"))
    except Exception:
        server.stop()
        raise
    yield server, post, prom
    prom.stop()
    server.stop()


def test_drift_alert_fires_on_corrupted_images_only(stack, trained_template):
    server, post, prom = stack
    test = load_arrays(trained_template / "data" / "processed", "test")
    clean = np.ascontiguousarray(np.asarray(test.x).transpose(0, 2, 3, 1))[: 2 * WINDOW]
    for batch in np.split(clean, 4):
        assert len(post(batch)["predictions"]) == len(batch)
    assert _metric(server.url, "cifar100_drift_detected") == 0
    # Prometheus has scraped the clean window (drift 0) and, evaluating every second, fires nothing.
    scraped = lambda: api_value(prom, 'cifar100_drift_detected{job="cifar100-serve"}') == 0  # noqa: E731
    prometheus.wait_for(scraped, 30, "a scrape of the clean window")
    time.sleep(3)  # three rule evaluations on the clean data
    assert "Cifar100InputDrift" not in prometheus.firing(prom)

    # Contrast crushed to 15% and Gaussian noise: CIFAR-100-C's contrast and noise at severity 5.
    rng = np.random.default_rng(0)
    means = clean.mean(axis=(1, 2), keepdims=True)
    bad = np.clip((clean - means) * 0.15 + means + rng.normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    for batch in np.split(bad, 4):
        post(batch)
    assert _metric(server.url, "cifar100_drift_detected") == 1
    assert _metric(server.url, "cifar100_drift_score") > 2  # -log10(alpha)
    prometheus.wait_for(lambda: "Cifar100InputDrift" in prometheus.firing(prom), 60, "Cifar100InputDrift to fire")
    fired = prometheus.firing(prom)
    assert not fired & {"Cifar100HighErrorRate", "Cifar100ServerDown"}, fired  # (latency depends on the machine)


def api_value(prom, expr: str) -> float | None:
    result = prometheus.api(prom, "query", query=expr)["result"]
    return float(result[0]["value"][1]) if result else None
