"""MLflow under faults: an unreachable tracking server, a registry that refuses (item 13),
the same weights registered again (item 14)."""

from __future__ import annotations

import sys

import pytest

from tests.support.faults import Expect, assert_clean
from tests.support.no_registry import RegistryRefusingProxy
from tests.support.servers import free_port, launch, wait_ready

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_mlflow_unreachable(sb):
    done = sb.stage("train", env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"})
    assert_clean(sb, Expect(done, words=("MLflow",)))


def mlflow_server(sb, logs) -> str:
    """A real MLflow server over the sandbox's own store; its URL once it answers."""
    sb.begin()  # the store as it was before the server opened it
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{sb.root / 'mlflow.db'}"]
    cmd += ["--default-artifact-root", str(sb.root / "mlartifacts"), "--no-serve-artifacts"]
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = launch("mlflow-faults", cmd, logs, env, f"http://127.0.0.1:{port}")  # its log outside the sandbox
    sb.stops.append(server.stop)
    wait_ready(server, "/health")
    return server.url


def test_registry_refuses_404(sb, tmp_path):
    """item 13: one line saying so and what to do; the model stays logged."""
    proxy = RegistryRefusingProxy(mlflow_server(sb, tmp_path), routes=("/registered-models/create",))
    sb.stops.append(proxy.stop)
    sb.params(register={"model_name": "faults-refused"})  # a model the store does not hold yet
    done = sb.stage("register", env={"MLFLOW_TRACKING_URI": proxy.url})
    assert_clean(sb, Expect(done, words=("not supported",)))


def test_register_same_weights_again(sb):  # item 14
    exp = Expect(sb.dvc("repro", "-f", "-s", "register"), rc=0)
    if (sb.root / "checkpoints").is_dir() and not any((sb.root / "checkpoints").iterdir()):
        exp.notes.append("an empty checkpoints/ is left")
    assert_clean(sb, exp)
