"""The registry goes away under a serving A/B pair: a real MLflow server over the test registry is
stopped and restarted. The outage shows in /ready and the gauge within a poll, both variants keep
answering, and the alias moved meanwhile is served within a poll of the registry's return. A hung
registry (accepts, never answers) costs a poll at most the bounded request timeout."""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from serve import settings as settings_mod
from serve.app import create_app
from serve.assign import CHALLENGER
from serve.follow import bound_requests
from serve.metrics import Metrics
from serve.variants import Variants
from smoke import servers as smoke_servers
from smoke import serving
from smoke.servers import free_port
from stages.lib import registry
from tests.support.blackhole import Blackhole
from tests.support.servers import launch, wait_ready

POLL_S = 1.0
TIMEOUT_S = 2  # MLFLOW_HTTP_REQUEST_TIMEOUT for the follower (an int, as MLflow reads it)
LOAD_SLACK_S = 60  # loading a version on 2 busy cores, generous
IMAGES = {"images": np.zeros((1, 32, 32, 3), int).tolist()}


def _mlflow(root, port: int, logs):
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    cmd += ["--default-artifact-root", str(root / "mlartifacts"), "--no-serve-artifacts"]
    server = launch(
        f"mlflow-outage-{int(time.time())}",
        cmd,
        logs,
        {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        f"http://127.0.0.1:{port}",
    )
    wait_ready(server, "/health")
    return server


def _settings(root, uri: str):
    s = settings_mod.load(root / "params.yaml", env={"MLFLOW_TRACKING_URI": uri})
    return dataclasses.replace(
        s, mode="ab", challenger_share=50.0, poll_interval_s=POLL_S, registry_timeout_s=TIMEOUT_S
    )


def _until(what, limit_s: float) -> float:
    """Seconds until what() held; AssertionError after limit_s."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if what():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {limit_s} s")


def _bounded(monkeypatch) -> None:
    """What `python -m serve` sets (bound_requests), for this process and this test only."""
    env: dict[str, str] = {}
    bound_requests(TIMEOUT_S, env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_outage_shows_within_a_poll_and_the_moved_alias_loads_within_a_poll_of_recovery(
    serve_store, tmp_path, monkeypatch
):
    root, v1, v2 = serve_store
    local = MlflowClient(tracking_uri=serving.store_uri(root), registry_uri=serving.store_uri(root))
    local.set_registered_model_alias(serving.NAME, CHALLENGER, v2)
    _bounded(monkeypatch)
    # An MLflow server took over 120 s to start on 2 cores shared with a training run (measured).
    monkeypatch.setattr(smoke_servers, "START_TIMEOUT_S", 600)
    port = free_port()
    server = _mlflow(root, port, tmp_path)
    try:
        variants = Variants(_settings(root, server.url), Metrics())
        with TestClient(create_app(variants.settings, variants)) as http:
            ready = lambda: http.get("/ready").json()  # noqa: E731
            _until(lambda: ready()["missing"] == [], LOAD_SLACK_S)
            stopping = time.time()
            server.stop()  # SIGTERM: it stops answering at once, its process may take seconds to exit
            stopped = time.time()
            _until(lambda: not ready()["registry"]["reachable"], POLL_S + TIMEOUT_S + 5)
            status = ready()
            since = status["registry"]["unreachable_since"]
            assert status["ready"] and stopping <= since <= stopped + POLL_S + TIMEOUT_S + 5, (stopping, since, stopped)
            assert variants.metrics.registry_down_since._value.get() == status["registry"]["unreachable_since"]
            assert "ConnectionError" in status["registry"]["error"], status
            answers = [http.post("/predict", json=IMAGES, headers={"X-Client-Id": f"k{i}"}) for i in range(12)]
            assert {a.status_code for a in answers} == {200} and {a.json()["version"] for a in answers} == {v1, v2}
            registry.move_champion(local, serving.NAME, v2)  # the alias moves while the registry is out
            server = _mlflow(root, port, tmp_path)
            loaded = _until(lambda: ready()["variants"]["champion"]["version"] == v2, POLL_S + LOAD_SLACK_S)
            status = ready()
            assert status["registry"] == {"reachable": True, "unreachable_since": None, "error": None}
            assert "cifar100_registry_unreachable_since_seconds 0.0" in http.get("/metrics").text
    finally:
        server.stop()
    print(f"outage noticed {since - stopping:.2f} s after SIGTERM (stop took {stopped - stopping:.2f} s);")
    print(f"moved alias served {loaded:.2f} s after the registry answered again (poll {POLL_S} s)")


def test_a_hung_registry_costs_a_poll_at_most_the_request_timeout(serve_store, monkeypatch):
    root, _, _ = serve_store
    hole = Blackhole()
    env: dict[str, str] = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3"}
    bound_requests(TIMEOUT_S, env)
    assert env == {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(TIMEOUT_S)}  # user's wins
    _bounded(monkeypatch)
    try:
        variants = Variants(_settings(root, hole.url), Metrics())
        start = time.monotonic()
        variants.follower.poll()
        took = time.monotonic() - start
    finally:
        hole.close()
    state = variants.follower.registry
    assert state.unreachable_since is not None and state.error, state
    assert took < TIMEOUT_S + 5, took  # MLflow's defaults: 120 s a request, retried 5-7 times
    assert variants.metrics.registry_down_since._value.get() == state.unreachable_since
