"""`make ab-promote` on a real MLflow registry (sqlite store) and a real feedback store:
inconclusive and stale-alias refusals move nothing; a promote verdict moves champion under the
alias lock, tags the version, logs a run, notifies, and `rollback` undoes it."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient
from sqlalchemy import bindparam, update

from flows import ab_promote as entry
from flows.webhook import WebhookReceiver
from ops import ab_report, ab_settings
from ops.ab_promote import promote
from proc.run import Fail
from serve.feedback import FeedbackStore, Prediction, predictions
from smoke import serving
from stages.lib import registry


def _fill(url: str, versions: dict[str, str], acc: dict[str, float], n: int) -> None:
    """n labelled requests per variant, alternating, with exactly acc * n correct each."""
    store = FeedbackStore(url)
    rows, labels = [], []
    for i in range(n):
        for variant, version in versions.items():
            rid = f"{variant}-{version}-{i}"
            rows.append(Prediction(rid, variant, version, 1, None, float(len(rows))))
            hit = int((i + 1) * acc[variant]) > int(i * acc[variant])
            labels.append((rid, 1 if hit else 2))
    store.record_many(rows)
    # One transaction for all labels (store.label commits each: thousands of fsyncs on a busy disk).
    c = predictions.c
    stmt = (
        update(predictions)
        .where(c.request_id == bindparam("rid"))
        .values(label=bindparam("lab"), labelled_at=bindparam("t"))
    )
    with store.engine.begin() as conn:
        conn.execute(stmt, [{"rid": rid, "lab": lab, "t": float(t)} for t, (rid, lab) in enumerate(labels)])
    store.dispose()


@pytest.fixture
def setup(serve_store, tmp_path, monkeypatch):
    root, v1, v2 = serve_store
    uri = serving.store_uri(root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PIPELINE_LOCK_DIR", str(tmp_path / "locks"))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias(serving.NAME, registry.CHALLENGER, v2)
    return client, f"sqlite:///{tmp_path / 'fb.db'}", v1, v2


def test_inconclusive_and_stale_alias_refuse(setup):
    client, url, v1, v2 = setup
    _fill(url, {"champion": v1, "challenger": v2}, {"champion": 0.75, "challenger": 0.75}, 400)
    settings = ab_settings.AbSettings()
    with pytest.raises(Fail, match=r"verdict is inconclusive .*more labels per variant needed.*champion stays v1"):
        promote(client, serving.NAME, "ab", url, settings)
    _fill(url, {"challenger": "99"}, {"challenger": 0.95}, 3000)  # a later challenger version the alias is not on
    with pytest.raises(Fail, match=r"measured challenger v99 but the alias points at v2"):
        promote(client, serving.NAME, "ab", url, settings)
    assert str(client.get_model_version_by_alias(serving.NAME, "champion").version) == v1


def test_promote_moves_tags_logs_notifies_and_rolls_back(setup, monkeypatch, capsys):
    client, url, v1, v2 = setup
    _fill(url, {"champion": v1, "challenger": v2}, {"champion": 0.70, "challenger": 0.80}, 3000)
    monkeypatch.setenv("SERVE_FEEDBACK_URL", url)
    monkeypatch.setenv("AB_OUT", "reports/ab")
    with WebhookReceiver() as hook:
        monkeypatch.setenv("AUTOMATION_NOTIFY_URLS", hook.apprise_url)
        assert entry.main(["--params", "params.yaml"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (line["from"], line["to"], line["verdict"]) == (v1, v2, "promote") and line["p_value"] <= 0.05
    assert str(client.get_model_version_by_alias(serving.NAME, "champion").version) == v2
    tags = client.get_model_version(serving.NAME, v2).tags
    assert tags["ab.verdict"] == "promote" and "mSPRT" in tags["ab.test"] and float(tags["ab.e_value"]) >= 20
    assert json.loads(tags["ab.counts"]) == {
        "champion": {"labelled": 3000, "correct": 2100},
        "challenger": {"labelled": 3000, "correct": 2400},
    }
    run = client.get_run(tags["ab.run_id"])
    assert run.data.metrics["challenger_top1"] == pytest.approx(0.8) and run.data.params["challenger"] == v2
    assert [p["type"] for p in hook.payloads] == ["success"] and f"v{v2} is now champion" in hook.payloads[0]["message"]
    # A second promote: v2 is champion already, nothing moves; rollback goes back to v1.
    assert entry.main(["--params", "params.yaml"]) == 1
    assert "already champion" in capsys.readouterr().err
    assert registry.rollback(client, serving.NAME) == (v2, v1)


def test_report_writes_json_and_png(setup, tmp_path):
    _, url, v1, v2 = setup
    _fill(url, {"champion": v1, "challenger": v2}, {"champion": 0.70, "challenger": 0.80}, 500)
    body = ab_report.report(url, ab_settings.AbSettings(out=tmp_path / "ab"))
    assert (tmp_path / "ab" / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "ab" / "report.json").read_text())["verdict"] == body["verdict"]
    assert (
        body["variants"]["champion"]["top1"] == pytest.approx(0.70) and body["variants"]["challenger"]["version"] == v2
    )
