"""Issue 24, the schedule half: a failed step's notification names the step's own reason, step
logs are scrubbed as notifications are, and the drift watcher survives a failed poll."""

from __future__ import annotations

import pytest

from flows import steps

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
    assert "make: ***" in (tmp_path / "run" / "reproduce.log").read_text()  # the log keeps everything
    assert steps.last_line("x: error: real\nmake[1]: *** [Makefile:3: y] Error 1\n") == "x: error: real"


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
