"""The guardrail end to end, every part real: an exporter on 127.0.0.1 serving the server's request
counter with `variant` and `version` labels (the challenger fails half its requests), a real
Prometheus on monitoring/prometheus.yml + guardrails.yml, a real Alertmanager on
monitoring/alertmanager.yml, the receiver (`python -m flows.guardrail_server`) on a real MLflow
registry (SQLite) and a real Apprise webhook. The challenger is taken out of traffic: the
registered model tag serve.challenger_share becomes "0", champion stays, one notification."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest
from mlflow import MlflowClient
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily

from flows.guardrail import SHARE_TAG
from flows.webhook import WebhookReceiver
from stages.lib import params, registry
from tests.support import alertmanager, prometheus
from tests.support.servers import ROOT, free_port, launch, wait_ready

MODEL = params.load(ROOT / "params.yaml").register.model_name  # what the receiver guards
RATES = {  # /predict requests/s of (metric, variant, version): answered or failed
    ("cifar100_predictions", "champion", "1"): 20.0,
    ("cifar100_predictions", "challenger", "2"): 5.0,
    ("cifar100_prediction_errors", "challenger", "2"): 5.0,
}


class VariantTraffic:
    """The A/B server's per-variant counters (serve/metrics.py), growing at RATES since start."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def collect(self) -> Iterator[CounterMetricFamily]:
        elapsed_s = time.monotonic() - self.t0
        for name in ("cifar100_predictions", "cifar100_prediction_errors"):
            family = CounterMetricFamily(name, name, labels=["variant", "version"])
            for (metric, variant, version), rate in RATES.items():
                if metric == name:
                    family.add_metric([variant, version], rate * elapsed_s)
            yield family


@pytest.fixture
def exporter() -> Iterator[str]:
    reg = CollectorRegistry()
    reg.register(VariantTraffic())
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=reg)
    yield f"127.0.0.1:{port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def client(tmp_path) -> MlflowClient:
    """v1 champion, v2 challenger at a 20 % share."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = MlflowClient(uri, uri)
    c.create_registered_model(MODEL)
    for _ in range(2):
        c.create_model_version(MODEL, f"file://{tmp_path}/art/model")
    registry.move_champion(c, MODEL, "1")
    c.set_registered_model_alias(MODEL, registry.CHALLENGER, "2")
    c.set_registered_model_tag(MODEL, SHARE_TAG, "20")
    return c


def test_a_failing_challenger_is_taken_out_of_traffic(tmp_path, exporter, client):
    prometheus.binary("prometheus")  # skip before starting anything where a binary is missing
    alertmanager.binary("prometheus-alertmanager", "prometheus-alertmanager")
    started = []
    with WebhookReceiver() as hook:
        try:
            port = free_port()
            env = {
                "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
                "AUTOMATION_GUARDRAIL_PORT": str(port),
                "AUTOMATION_NOTIFY_URLS": hook.apprise_url,
            }
            cmd = [sys.executable, "-m", "flows.guardrail_server", "--params", str(ROOT / "params.yaml")]
            (tmp_path / "guard").mkdir()
            receiver = launch("guardrail", cmd, tmp_path / "guard", env, f"http://127.0.0.1:{port}")
            started.append(receiver)
            wait_ready(receiver, "/health")
            am = alertmanager.start(tmp_path / "alertmanager", receiver.url + "/alerts")
            started.append(am)
            started.append(prometheus.start(tmp_path / "prometheus", exporter, am.url.removeprefix("http://")))
            share = lambda: client.get_registered_model(MODEL).tags.get(SHARE_TAG) == "0"  # noqa: E731
            prometheus.wait_for(share, 120, f"{SHARE_TAG} to become 0")
            prometheus.wait_for(lambda: hook.payloads, 60, "the guardrail notification")
        finally:
            for server in reversed(started):
                server.stop()
    assert str(client.get_registered_model(MODEL).aliases[registry.CHAMPION]) == "1"
    (note,) = hook.payloads
    assert note["title"] == "[cifar100] guardrail: challenger share set to 0 (was 20)"
    assert "challenger (v2)" in note["message"]
    assert "Cifar100VariantHighErrorRate: challenger: challenger share set to 0 (was 20)" in receiver.tail()
    assert (tmp_path / "guard" / ".automation" / "guardrail-challenger.json").is_file()
