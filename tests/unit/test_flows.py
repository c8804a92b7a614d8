"""flows/: failure classification, step running, settings, notifications (to a real local
webhook receiver), the drift trigger (against a real local /metrics endpoint) and the report."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from flows import drift, notify, report, settings, steps
from flows.webhook import WebhookReceiver
from ops.common import Fail
from tests.support.metrics import DRIFT, QUIET, Metrics

SECRET = "s3cr3t-token-value-123"


@pytest.mark.parametrize(
    ("code", "output", "kind"),
    [
        (0, "anything", "ok"),
        (1, "ERROR: unexpected error - Could not connect to the endpoint URL", "transient"),
        (1, "pull: error: remote 'x' (s3://b) unreachable after 3 attempts (timed out)", "transient"),
        (1, "mlflow.exceptions.MlflowException: API request failed with error code 503 (503)", "transient"),
        (1, "register: error: INTERNAL_ERROR: Response: 500 Internal Server Error", "transient"),
        (1, "stages: Docker daemon not reachable at unix:///var/run/docker.sock: start it", "transient"),
        (1, "validate: error: data/raw: train has 30 images per class, under min_train_per_class=1000", "permanent"),
        (1, "params.yaml: unknown key train.recipee", "permanent"),
        (1, "validate: error: timed out reading (connection refused)", "permanent"),  # validation wins
        (2, "usage: python -m stages ...", "permanent"),
        (1, "Traceback ... KeyError: 'x'", "permanent"),
        (75, "", "transient"),
    ],
)
def test_classify(code, output, kind):
    assert steps.classify(code, output) == kind


def test_commands_are_the_project_entry_points():
    cmds = steps.commands("docker", "/v/bin/python", Path("/v"))
    assert cmds["pull"] == ["/v/bin/python", "-m", "ops.remote", "pull"]
    assert cmds["reproduce"][:3] == ["make", "--no-print-directory", "run"]
    assert "STAMP=" in cmds["reproduce"]
    assert steps.commands("local", "p", Path("/v"))["reproduce"][2] == "run-local"
    assert cmds["git_sync"][-1] == "ops.git_sync"
    assert list(cmds) == list(steps.STEPS)
    with pytest.raises(ValueError, match="docker or local"):
        steps.commands("k8s", "p", Path("/v"))


def test_run_step_logs_attempts_and_classifies(tmp_path):
    run = steps.run_dir(tmp_path, "manual__2026-01-01T00:00:00+00:00")
    assert ":" not in run.name and "+" not in run.name
    ok = steps.run_step("push", ["sh", "-c", "echo pushed"], tmp_path, run, 30)
    assert ok.output == "pushed\n" and (run / "push.log").read_text() == "pushed\n"
    with pytest.raises(steps.StepFailed) as exc:
        steps.run_step("push", ["sh", "-c", "echo 'fatal: Could not resolve host: x'; exit 128"], tmp_path, run, 30)
    assert exc.value.transient and exc.value.returncode == 128 and "resolve host" in exc.value.line
    with pytest.raises(steps.StepFailed) as exc:
        steps.run_step("reproduce", ["sh", "-c", "echo 'validate: error: bad'; exit 1"], tmp_path, run, 30)
    assert not exc.value.transient
    assert steps.retries_in(run) == 1  # push ran twice, reproduce once


def test_run_step_timeout_stops_the_step(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(steps.StepFailed, match="timed out after 0.5 s") as exc:
        steps.run_step("report", ["sh", "-c", "sleep 30"], tmp_path, run, 0.5)
    assert exc.value.returncode == 124 and not exc.value.transient


def test_injected_fault_fires_once_per_run(tmp_path, monkeypatch):
    monkeypatch.setenv(steps.FAULT_ENV, "push")
    run = tmp_path / "run"
    with pytest.raises(steps.StepFailed) as exc:
        steps.run_step("push", ["true"], tmp_path, run, 30)
    assert exc.value.transient
    steps.run_step("push", ["true"], tmp_path, run, 30)
    steps.run_step("report", ["true"], tmp_path, run, 30)


def test_pull_skipped_without_dvc_lock(tmp_path):
    result = steps.run_step("pull", ["false"], tmp_path, tmp_path / "run", 30)
    assert "nothing to pull" in result.output


def test_steps_cli_exit_codes(tmp_path, capsys):
    base = ["--run", "r1", "--project", str(tmp_path)]
    assert steps.main([*base, "push", "--", "sh", "-c", "echo 'connection refused'; exit 1"]) == steps.EX_TEMPFAIL
    assert steps.main([*base, "push", "--", "sh", "-c", "echo 'validate: error: x'; exit 1"]) == 1
    assert steps.main([*base, "report", "--", "true"]) == 0
    assert "permanent failure" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        steps.main([*base, "report"])


def test_settings_defaults_and_errors(tmp_path):
    cfg = settings.load(tmp_path, {})
    assert cfg.cron == "0 2 * * *" and cfg.executor == "docker" and cfg.retries == 3
    assert cfg.timeouts_s["reproduce"] == 6 * 3600
    (tmp_path / ".env").write_text("AUTOMATION_CRON=*/5 * * * *\nAUTOMATION_EXECUTOR=local\n")
    cfg = settings.load(tmp_path, {"AUTOMATION_TIMEOUT_PUSH_S": "60"})
    assert (cfg.cron, cfg.executor, cfg.timeouts_s["push"]) == ("*/5 * * * *", "local", 60)
    for env, match in [
        ({"AUTOMATION_EXECUTOR": "k8s"}, "AUTOMATION_EXECUTOR='k8s'"),
        ({"AUTOMATION_RETRIES": "many"}, "AUTOMATION_RETRIES='many'.*not a number"),
        ({"AUTOMATION_RETRIES": "99"}, "AUTOMATION_RETRIES=99.*out of range"),
        ({"AUTOMATION_CRON": "nightly"}, "5 cron fields"),
    ]:
        with pytest.raises(Fail, match=match):
            settings.load(tmp_path, env)


def test_notifications_reach_the_webhook_without_secrets(monkeypatch):
    monkeypatch.setenv("DAGSHUB_TOKEN", SECRET)
    with WebhookReceiver() as hook:
        assert notify.send("failure", "run failed", f"dvc push: 403 for token {SECRET}", hook.apprise_url)
        assert notify.send("drift", "drift", "from https://user:pw-123@host/metrics", hook.apprise_url)
        assert notify.send("info", "nothing", "no targets", "")  # none configured: nothing sent, no error
    assert [p["type"] for p in hook.payloads] == ["failure", "warning"]
    assert hook.payloads[0]["title"] == "[cifar100] run failed"
    raw = b"".join(hook.raw)
    assert SECRET.encode() not in raw and b"pw-123" not in raw


def test_notification_to_a_dead_endpoint_is_reported_not_raised(capsys):
    assert not notify.send("failure", "x", "y", "json://127.0.0.1:9/nothing-listens")
    assert not notify.send("failure", "x", "y", "notascheme://what")
    assert "not delivered" in capsys.readouterr().err


def test_drift_flag_parsing():
    assert drift.drift_flag(DRIFT)
    assert not drift.drift_flag(QUIET)
    assert not drift.drift_flag("cifar100_drift_score 1.0\n")


def test_drift_trigger_is_rate_limited(tmp_path, monkeypatch):
    started = []
    metrics = Metrics(QUIET)
    limit = drift.RateLimit(tmp_path / "drift.json", min_interval_s=3600)
    monkeypatch.delenv("AUTOMATION_NOTIFY_URLS", raising=False)
    try:
        assert drift.poll_once(metrics.url, limit, lambda: started.append(1), now=1000) == "quiet"
        metrics.text = DRIFT
        assert drift.poll_once(metrics.url, limit, lambda: started.append(1), now=1000) == "triggered"
        # the alarm stays up: no second run within the hour, even from a restarted watcher
        again = drift.RateLimit(tmp_path / "drift.json", min_interval_s=3600)
        assert drift.poll_once(metrics.url, again, lambda: started.append(1), now=1000 + 3599) == "rate-limited"
        assert drift.poll_once(metrics.url, again, lambda: started.append(1), now=1000 + 3600) == "triggered"
        assert started == [1, 1]
        stop = threading.Event()
        stop.set()  # one poll, then out
        drift.watch(metrics.url, again, lambda: started.append(1), 0.01, stop)
        assert started == [1, 1]
    finally:
        metrics.close()
    assert drift.poll_once(metrics.url, limit, lambda: started.append(1)) == "unreachable"
    assert json.loads((tmp_path / "drift.json").read_text())["last_trigger"] == 1000 + 3600


def test_report_reads_what_dvc_and_register_wrote(tmp_path, monkeypatch):
    log = "Stage 'ingest' didn't change, skipping\nRunning stage 'train':\n> python -m runner train\n"
    log += "Running stage 'register':\n"
    assert report.stages_rerun(log) == ["train", "register"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "reproduce.log").write_text(log)
    (tmp_path / "reports").mkdir()
    reg = {"model": "m", "version": 2, "promoted": True, "reason": "better", "test_top1": 0.5}
    (tmp_path / "reports" / "registry.json").write_text(json.dumps(reg))
    monkeypatch.delenv("AUTOMATION_NOTIFY_URLS", raising=False)
    summary = report.report(tmp_path, run)  # not a DVC repo: the diff says why, nothing raises
    assert summary["stages_rerun"] == ["train", "register"] and summary["registry"] == reg
    assert "error" in summary["metrics_diff"]
    assert "m v2 is now champion" in report.promotion_message(summary)
    assert report.promotion_message({**summary, "registered_now": False}) is None
    assert json.loads((run / "report.json").read_text())["registered_now"]


def test_webhook_receiver_refuses_get():
    with WebhookReceiver() as hook:
        done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", hook.url], capture_output=True)
    assert done.stdout in (b"405", b"")  # curl may be absent; the server must not crash either way


def test_schedule_refuses_bad_settings_in_one_line(tmp_path, monkeypatch, capsys):
    from flows import serve

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOMATION_CRON", "every night")
    assert serve.main() == 1
    assert capsys.readouterr().err.strip() == (
        "schedule: error: AUTOMATION_CRON='every night' in the environment or .env: "
        "give 5 cron fields, e.g. '0 2 * * *'"
    )


def test_notify_cli_without_targets(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOMATION_NOTIFY_URLS", raising=False)
    assert notify.main(["info", "title", "body"]) == 0
