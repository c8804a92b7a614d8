"""Issue 24, the schedule half: a failed step's notification names the step's own reason, step
logs are scrubbed as notifications are, and the drift watcher survives a failed poll."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flows import drift, settings, steps
from ops import retry
from ops.common import Fail
from tests.support.blackhole import Blackhole, dvc_project_with_remote
from tests.support.metrics import DRIFT, Metrics

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-token-value-123"
DOTENV_SECRET = "aws-secret-from-dotenv-456"
MAKEFILE = """\
mlflow-check:
\t@echo 'mlflow-check: error: MLflow at http://127.0.0.1:9 rejected the credentials: fix .env' >&2; exit 1
run-local: mlflow-check
\t@echo never
"""


def test_failed_make_step_reports_its_own_reason_not_makes(tmp_path):
    (tmp_path / "Makefile").write_text(MAKEFILE)
    with pytest.raises(steps.StepFailed) as exc:
        steps.run_step("reproduce", ["make", "run-local"], tmp_path, tmp_path / "run", 60)
    assert exc.value.line.startswith("mlflow-check: error: MLflow at")
    assert "*** [Makefile" in (tmp_path / "run" / "reproduce.log").read_text()  # the log keeps everything
    assert steps.last_line("x: error: real\nmake[1]: *** [Makefile:3: y] Error 1\n") == "x: error: real"
    # Under a make (CI's `make test`), the step's make is a sub-make and says where it was.
    assert steps.last_line("x: error: real\nmake[2]: Leaving directory '/p'\n") == "x: error: real"


def test_step_logs_are_scrubbed_of_secrets(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSHUB_TOKEN", SECRET)
    (tmp_path / ".env").write_text(f"AWS_SECRET_ACCESS_KEY={DOTENV_SECRET}\n")
    script = f"echo 'token {SECRET} key {DOTENV_SECRET} url https://u:pw-789@host/x'; echo 'error: {SECRET}'; exit 1"
    with pytest.raises(steps.StepFailed) as exc:
        steps.run_step("push", ["sh", "-c", script], tmp_path, tmp_path / "run", 60)
    shown = (tmp_path / "run" / "push.log").read_text() + capsys.readouterr().out + str(exc.value)
    assert "token *** key ***" in shown
    for secret in (SECRET, DOTENV_SECRET, "pw-789"):
        assert secret not in shown


class NotRegistered(Exception):
    """What run_deployment raises before `serve` has registered the deployment (a 404)."""


def test_drift_watcher_survives_a_failed_start_and_never_notifies_it(tmp_path, monkeypatch, capsys):
    """The drift flag is on at start and the deployment is not there yet: the first start fails;
    the watcher logs it, retries with backoff, starts the run once it can, and notifies only that."""
    monkeypatch.setattr(drift, "FIRST_RETRY_S", 0.05)
    sent: list[str] = []
    monkeypatch.setattr(drift.notify, "send", lambda kind, title, body, *a: sent.append(body))
    attempts: list[int] = []
    stop = threading.Event()

    def start_run() -> None:
        attempts.append(1)
        if len(attempts) <= 2:
            raise NotRegistered("Deployment 'cifar100-retrain/nightly' not found (404)")
        stop.set()

    metrics = Metrics(DRIFT)
    limit = drift.RateLimit(tmp_path / "drift.json", min_interval_s=3600)
    thread = threading.Thread(target=drift.watch, args=(metrics.url, limit, start_run, 3600, stop), daemon=True)
    try:
        thread.start()
        thread.join(timeout=120)
    finally:
        stop.set()
        metrics.close()
    assert not thread.is_alive() and len(attempts) == 3
    assert len(sent) == 1 and "a retrain run was started" in sent[0]
    out = capsys.readouterr().out.splitlines()
    failed = [ln for ln in out if "poll failed (NotRegistered" in ln]
    assert len(failed) == 2 and "retrying in 0.05 s" in failed[0] and "retrying in 0.1 s" in failed[1]
    assert out[-1].endswith(": triggered") and limit.last() > 0


def test_drift_backoff_doubles_up_to_its_cap():
    waits = [drift.backoff_s(n, poll_s=60) for n in range(1, 12)]
    assert waits[:3] == [2, 4, 8] and max(waits) == drift.MAX_RETRY_S
    assert drift.backoff_s(20, poll_s=7200) == 7200


def test_a_hung_remote_costs_one_bounded_attempt(tmp_path):
    """A remote that accepts connections and never answers: one attempt ends after
    REMOTE_ATTEMPT_TIMEOUT_S with the one-line 'unreachable' reason (transient, so the engine retries)."""
    hole = Blackhole()
    project = dvc_project_with_remote(tmp_path, hole.url)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y" * 12, "REMOTE_ATTEMPTS": "1"}
    env.update({"REMOTE_ATTEMPT_TIMEOUT_S": "10", "PYTHONPATH": str(ROOT)})
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ops.remote", "push"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )
    finally:
        hole.close()
    assert time.monotonic() - start < 120 and done.returncode == 1
    line = done.stderr.strip()
    assert "\n" not in line and "unreachable after 1 attempt (timed out after 10 s)" in line
    assert steps.classify(done.returncode, line) == "transient"


def test_attempt_timeout_setting():
    assert retry.attempt_timeout_s({}) == 3600
    assert retry.attempt_timeout_s({"REMOTE_ATTEMPT_TIMEOUT_S": "1"}) == 10  # kept within 10 to 86400
    with pytest.raises(Fail, match="REMOTE_ATTEMPT_TIMEOUT_S='soon' is not a number"):
        retry.attempt_timeout_s({"REMOTE_ATTEMPT_TIMEOUT_S": "soon"})
    env = steps.step_env(Path("."), Path("run"), {"AUTOMATION_REMOTE_TIMEOUT_S": "45"})
    assert (env["REMOTE_ATTEMPTS"], env["REMOTE_ATTEMPT_TIMEOUT_S"]) == ("1", "45")
    assert settings.load(".", {}).remote_timeout_s == steps.REMOTE_TIMEOUT_S == 120
