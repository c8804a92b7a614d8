"""The guardrail receiver (flows/alerts.py, flows/guardrail.py, flows/guardrail_server.py) on a real MLflow
registry (a SQLite store in tmp_path) and a real Apprise webhook: each decision, the rate limit
across a restart, and the HTTP answers (200, 400, 404, 411, 413, 503), each 400-503 in one line."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from flows import alerts
from flows.guardrail import SHARE_TAG, Guardrail
from flows.guardrail_server import make_server
from flows.webhook import WebhookReceiver
from stages.lib import registry

MODEL = "guarded"
HOUR_S = 3600.0


def payload(*alerts_: dict) -> dict:
    return {"version": "4", "status": "firing", "receiver": "guardrail", "groupLabels": {}, "alerts": list(alerts_)}


def alert(variant: str, version: str | None = None, status: str = "firing") -> dict:
    labels = {"alertname": "Cifar100VariantHighErrorRate", "variant": variant, "guardrail": "true"}
    labels |= {"version": version} if version else {}
    return {"status": status, "labels": labels, "annotations": {"summary": f"{variant} fails"}, "fingerprint": "f1"}


def parsed(*alerts_: dict) -> list[alerts.Alert]:
    return alerts.parse(json.dumps(payload(*alerts_)).encode()).alerts


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A registry where v2 became champion after v1 (history [1]) and v3 is challenger, made once
    (MLflow's schema migrations take seconds): each test gets a copy."""
    path = tmp_path_factory.mktemp("registry") / "mlflow.db"
    uri = f"sqlite:///{path}"
    c = MlflowClient(uri, uri)
    c.create_registered_model(MODEL)
    for _ in range(3):
        c.create_model_version(MODEL, f"file://{path.parent}/art/model")
    registry.move_champion(c, MODEL, "1")
    registry.move_champion(c, MODEL, "2")
    c.set_registered_model_alias(MODEL, registry.CHALLENGER, "3")
    return path


@pytest.fixture
def client(template, tmp_path) -> MlflowClient:
    uri = f"sqlite:///{shutil.copy(template, tmp_path / 'mlflow.db')}"
    return MlflowClient(uri, uri)


@pytest.fixture
def hook(monkeypatch):
    with WebhookReceiver() as receiver:
        monkeypatch.setenv("AUTOMATION_NOTIFY_URLS", receiver.apprise_url)
        yield receiver


def guard(client, tmp_path, min_interval_s: float = HOUR_S) -> Guardrail:
    return Guardrail(client, MODEL, tmp_path / "state", bake_s=HOUR_S, min_interval_s=min_interval_s)


def test_a_challenger_alert_sets_the_share_to_0_once_per_interval_even_across_a_restart(client, tmp_path, hook):
    (a,) = parsed(alert("challenger", "3"))
    now = time.time()
    assert (
        guard(client, tmp_path)
        .handle(a, now)
        .endswith("challenger: challenger share set to 0 (was the serve.challenger_share setting)")
    )
    assert client.get_registered_model(MODEL).tags[SHARE_TAG] == "0"
    client.set_registered_model_tag(MODEL, SHARE_TAG, "20")  # a person puts it back
    assert "rate-limited" in guard(client, tmp_path).handle(a, now + 60)  # a new receiver: the limit is kept
    assert client.get_registered_model(MODEL).tags[SHARE_TAG] == "20"
    assert guard(client, tmp_path).handle(a, now + HOUR_S).endswith("share set to 0 (was 20)")
    assert guard(client, tmp_path, 0).handle(a, now + 2 * HOUR_S).endswith("challenger share already 0")
    assert [p["title"] for p in hook.payloads] == [
        "[cifar100] guardrail: challenger share set to 0 (was the serve.challenger_share setting)",
        "[cifar100] guardrail: challenger share set to 0 (was 20)",
    ]
    assert hook.payloads[0]["type"] == "warning" and "challenger fails" in hook.payloads[0]["message"]


def test_a_champion_alert_within_the_bake_period_rolls_champion_back_once(client, tmp_path, hook):
    g = guard(client, tmp_path, min_interval_s=0)
    now = time.time()
    assert g.handle(parsed(alert("champion", "2"))[0], now).endswith("champion rolled back from v2 to v1")
    assert str(client.get_registered_model(MODEL).aliases[registry.CHAMPION]) == "1"
    # The same alert again (Alertmanager repeats it): about v2, no longer champion.
    assert g.handle(parsed(alert("champion", "2"))[0], now).endswith(
        "the alert is about v2, champion is now v1: nothing to do"
    )
    # v1 within the bake period but with no earlier champion: not moved, said.
    assert "not rolled back:" in g.handle(parsed(alert("champion", "1"))[0], now)
    assert (
        len(hook.payloads) == 2
        and hook.payloads[0]["title"] == "[cifar100] guardrail: champion rolled back from v2 to v1"
    )


def test_a_champion_past_the_bake_period_is_left_to_a_person(client, tmp_path, hook):
    outcome = guard(client, tmp_path).handle(parsed(alert("champion"))[0], time.time() + 3 * HOUR_S)
    assert "champion v2 is 3.0 h old, past the bake period: left to a person" in outcome
    assert str(client.get_registered_model(MODEL).aliases[registry.CHAMPION]) == "2"
    assert len(hook.payloads) == 1


def test_resolved_and_unlabelled_alerts_change_nothing(client, tmp_path, hook):
    g = guard(client, tmp_path)
    assert g.handle(parsed(alert("challenger", status="resolved"))[0]).endswith("resolved: nothing to do")
    assert "is neither champion nor challenger" in g.handle(parsed(alert("canary"))[0])
    assert SHARE_TAG not in client.get_registered_model(MODEL).tags and not hook.payloads


@pytest.mark.parametrize(
    "body, field",
    [
        (b"{not json", "the body is not JSON"),
        (json.dumps({**payload(), "version": "3"}).encode(), "field version:"),
        (json.dumps(payload({"labels": {}})).encode(), "field alerts.0.status:"),
        (json.dumps(payload({"status": "firing", "labels": {"a": 1}})).encode(), "field alerts.0.labels.a:"),
        (json.dumps({"version": "4", "status": "firing"}).encode(), "field alerts: Field required (missing)"),
    ],
)
def test_a_bad_payload_is_one_line_naming_the_field(body, field):
    with pytest.raises(alerts.BadPayload) as err:
        alerts.parse(body)
    line = str(err.value)
    assert field in line and "\n" not in line and line.endswith("send Alertmanager's webhook JSON (version 4)")


@pytest.fixture
def served(client, tmp_path):
    def start(model: str = MODEL):
        server = make_server(Guardrail(client, model, tmp_path / "state", HOUR_S, HOUR_S), 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}"

    started: list = []
    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_receiver_answers_each_request_in_one_line(served, client, hook):
    url = served()
    ok = httpx.post(url + "/alerts", json=payload(alert("challenger", "3"), alert("champion", "9")), timeout=30)
    assert ok.status_code == 200, ok.text
    assert ok.json()["outcomes"][0].endswith("challenger share set to 0 (was the serve.challenger_share setting)")
    assert ok.json()["outcomes"][1].endswith("the alert is about v9, champion is now v2: nothing to do")
    assert client.get_registered_model(MODEL).tags[SHARE_TAG] == "0"
    for resp, code in [
        (httpx.post(url + "/alerts", content=b"[]", timeout=10), 400),
        (httpx.post(url + "/other", json=payload(), timeout=10), 404),
        (httpx.get(url + "/alerts", timeout=10), 404),
        (httpx.post(url + "/alerts", content=b"x" * (2 << 20), timeout=30), 413),
    ]:
        assert resp.status_code == code and resp.text.count("\n") == 1, (code, resp.text)
    assert httpx.get(url + "/health", timeout=10).text == "ok\n"


def test_a_registry_failure_is_503_and_records_nothing(served, tmp_path, hook):
    url = served(model="no-such-model")
    resp = httpx.post(url + "/alerts", json=payload(alert("challenger")), timeout=30)
    assert resp.status_code == 503 and resp.text.startswith("guard: could not act on the alerts: ")
    assert resp.text.count("\n") == 1 and not list((tmp_path / "state").glob("*.json")) and not hook.payloads
