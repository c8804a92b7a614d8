"""A real Prometheus scrapes a real model server; the drift alert fires when corrupted images arrive.

The server is tests/support/drift_app.py (the serving contract's metrics, fed by serve/drift.py)
on the model and reference profile the pipeline's stages built; to run this against
serve/app.py, change the `launch_server` import below to its launcher (same signature).
"""

from __future__ import annotations

import time
import urllib.request

import numpy as np
import pytest

from stages.lib.dataset import load_arrays
from tests.support import prometheus
from tests.support.drift_app import launch_server

WINDOW = 100  # the tiny test split has 400 images


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        lines = resp.read().decode().splitlines()
    return float(next(line.split()[-1] for line in lines if line.startswith(name + " ")))


@pytest.fixture
def stack(trained_template, tmp_path):
    """(server, post, prometheus) on the session's trained project; both stopped by PID afterwards."""
    prometheus.binary("prometheus")  # skip before starting anything where it is missing
    root = trained_template
    server, post = launch_server(tmp_path, root / "models", root / "reports" / "reference_profile.json", WINDOW)
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
        assert len(post(batch)["classes"]) == len(batch)
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
