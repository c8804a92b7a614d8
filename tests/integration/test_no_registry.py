"""register against a tracking server without a Model Registry (DagsHub/client#629): a real
MLflow 3 server behind a proxy that answers its registry routes with 404 "not supported"."""

from __future__ import annotations

import hashlib
import sys

import mlflow
import pytest
from mlflow import MlflowClient

from stages.lib import fsio, registry, tracking
from tests.integration.conftest import run_stage
from tests.support.no_registry import RegistryRefusingProxy
from tests.support.servers import free_port, launch, wait_ready

MODEL = "cifar100-classifier"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """A plain MLflow 3 server (sqlite store, proxied artifacts) on a free port."""
    work = tmp_path_factory.mktemp("mlflow-noreg")
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}", "--artifacts-destination", str(work / "art")]
    server = launch(
        "mlflow-noreg", cmd, work, {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, f"http://127.0.0.1:{port}"
    )
    wait_ready(server, "/health")
    yield server.url
    server.stop()


@pytest.fixture
def proxy(upstream, monkeypatch):
    found = RegistryRefusingProxy(upstream)
    monkeypatch.setattr(tracking, "_server_versions", {})
    yield found
    found.stop()


def test_refused_registry_ends_in_one_line_and_a_rerun_registers(trained, proxy, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)  # after `trained`, which clears it
    fsio.write_json(trained / "reports" / "metrics.json", {"test": {"top1": 0.5}})
    sha = hashlib.sha256((trained / "models" / "model.pt").read_bytes()).hexdigest()
    capsys.readouterr()
    assert run_stage("register") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("register: error: the MLflow server ")
    assert "no Model Registry" in err and f"model_sha256={sha}" in err and "rerun `make run`" in err
    assert any("registered-models/create" in p or "model-versions/search" in p for p in proxy.refused)
    assert not (trained / "reports" / "registry.json").exists()

    mlflow.set_tracking_uri(proxy.url)  # the model stays logged to its run, found by its weights' hash
    mlflow.set_experiment("cifar100")
    run_id = tracking.find_run(sha)
    client = MlflowClient()
    assert run_id and registry.logged_model(client, run_id)

    proxy.refusing = False  # the registry works again: a rerun registers the logged model
    assert run_stage("register") == 0
    result = fsio.read_json(trained / "reports" / "registry.json")
    assert (result["version"], result["aliases"]) == (1, ["challenger", "champion"])
    assert client.get_model_version(MODEL, "1").run_id == run_id
    assert tracking.find_run(sha) == run_id  # no second run for the same weights
