"""The pipeline's MLflow code against real tracking servers with basic auth: MLflow 3.x
and 2.22.2 (the last 2.x; DagsHub's hosted MLflow is reported to run 2.x). Credentials
come from the environment, as a stage gets them."""

from __future__ import annotations

import http.server
import os
import threading

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from stages.lib import dataset, fsio, model_card, tracking
from stages.lib.cli import PipelineError
from tests.integration.conftest import run_stage, set_params
from tests.support.servers import mlflow_servers  # noqa: F401  (fixture)

VERSIONS = ["3", "2"]


def use(found, monkeypatch):
    """Point the environment at a server (URI, admin credentials) and clear the probe cache."""
    if found is None:
        pytest.skip("no MLflow 2.x venv: .ci/setup-mlflow2.sh failed (needs PyPI)")
    for key, value in found.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(tracking, "_server_versions", {})
    return found


@pytest.fixture(params=VERSIONS, ids=lambda v: f"mlflow{v}")
def server(request, mlflow_servers, monkeypatch):  # noqa: F811
    return use(mlflow_servers[request.param], monkeypatch)


@pytest.fixture
def server2(mlflow_servers, monkeypatch):  # noqa: F811
    """The 2.x server (3.x gets the whole pipeline, through make, in tests/e2e/test_remote.py)."""
    return use(mlflow_servers["2"], monkeypatch)


def test_probe_reads_the_servers_version(server):
    assert tracking.check_server(server.uri) == server.version
    assert server.version.startswith({"3": "3.", "2": "2.22.2"}[server.label])


def test_wrong_password_stops_the_stage_with_one_line(trained, server, monkeypatch, capsys):
    assert os.environ["MLFLOW_TRACKING_URI"] == server.uri  # `trained` clears it: it must come first
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    fsio.write_json(trained / "reports" / "metrics.json", {"test": {"top1": 0.5}})
    assert run_stage("register") == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "rejected the credentials (HTTP 401)" in err and "MLFLOW_TRACKING_PASSWORD" in err
    assert "not-the-password" not in err and server.password not in err
    assert model_card.weights_path(trained / "models").is_file()  # the stage's inputs are untouched


def test_evaluate_register_and_serve_on_a_2x_server(trained, server2, capsys):
    """What DagsHub's 2.x MLflow must take from our 3.x client: runs, metrics, artifacts,
    a registered version from a run's artifact URI, aliases, and models:/NAME@champion."""
    assert os.environ["MLFLOW_TRACKING_URI"] == server2.uri  # `trained` clears it: it must come first
    name, experiment = "cifar-2x", "exp-2x"
    set_params(trained, register={"model_name": name}, mlflow={"experiment": experiment})
    assert run_stage("evaluate") == 0
    assert run_stage("register") == 0
    first = fsio.read_json(trained / "reports" / "registry.json")
    assert first["aliases"] == ["challenger", "champion"] and first["promoted"]

    assert run_stage("register") == 0  # the same weights are not registered twice
    again = fsio.read_json(trained / "reports" / "registry.json")
    assert again == first  # the same file, so dvc.lock does not change

    mlflow.set_tracking_uri(server2.uri)
    client = MlflowClient()
    version = client.get_model_version_by_alias(name, "champion")
    run = client.get_run(version.run_id)
    assert run.data.metrics["test_top1"] == pytest.approx(first["test_top1"])
    assert version.tags[tracking.MODEL_TAG] == run.data.tags[tracking.MODEL_TAG]
    logged = " ".join([*run.data.params.values(), *run.data.tags.values(), *version.tags.values()])
    assert server2.password not in logged

    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    test = dataset.load_arrays(trained / "data" / "processed", "test")
    images = np.ascontiguousarray(np.asarray(test.x[:8]).transpose(0, 2, 3, 1))
    assert model.predict(images).shape == (8, 100)
    assert server2.password not in capsys.readouterr().out


def test_mlflow3_only_apis_are_what_a_2x_server_lacks(server2):
    """Why registry.py logs plain run artifacts: 3.x logged-model calls 404 on a 2.x server."""
    mlflow.set_tracking_uri(server2.uri)
    with pytest.raises(mlflow.exceptions.MlflowException, match="404"):
        mlflow.search_logged_models(experiment_ids=["0"])


def test_mlflow_check_reports_the_version_or_one_line_error(server, monkeypatch, capsys):
    """`make mlflow-check`, which `make run-local` runs before `dvc repro` deletes any output."""
    from ops import remote
    from ops.common import main

    assert main("mlflow-check", remote._main, ["check"]) == 0
    assert server.version in capsys.readouterr().out
    monkeypatch.setattr(tracking, "_server_versions", {})
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    assert main("mlflow-check", remote._main, ["check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mlflow-check: error: ") and err.count("\n") == 1 and "rejected the credentials" in err


class _Fake(http.server.BaseHTTPRequestHandler):
    """An MLflow server that predates aliases, or one with no /version route."""

    version = "2.1.1"

    def do_GET(self):
        body = self.version.encode()
        self.send_response(200 if self.version else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Fake)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    thread.join(timeout=10)


def test_a_server_without_aliases_is_refused_naming_the_feature(fake_server, monkeypatch):
    monkeypatch.setattr(tracking, "_server_versions", {})
    monkeypatch.setattr(_Fake, "version", "2.1.1")
    with pytest.raises(PipelineError, match=r"runs MLflow 2\.1\.1, which lacks registered-model aliases.*>= 2\.3"):
        tracking.check_server(f"http://127.0.0.1:{fake_server.server_port}")


def test_a_server_that_does_not_say_its_version_is_used_as_is(fake_server, monkeypatch):
    monkeypatch.setattr(tracking, "_server_versions", {})
    monkeypatch.setattr(_Fake, "version", "")
    assert tracking.check_server(f"http://127.0.0.1:{fake_server.server_port}") is None


def test_an_unreachable_server_fails_after_bounded_retries(monkeypatch):
    from tests.support.servers import free_port

    monkeypatch.setattr(tracking, "_server_versions", {})
    with pytest.raises(PipelineError, match=r"unreachable after 3 attempts \(Connection refused\)") as caught:
        tracking.check_server(f"http://user:secret@127.0.0.1:{free_port()}")
    assert "secret" not in str(caught.value)
