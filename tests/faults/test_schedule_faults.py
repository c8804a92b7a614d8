"""`make schedule` and a flow run stopped by a real signal, and a remote that is down (issue 24):
`python -m flows.serve` and `python -m flows.pipeline` as real subprocesses against a real Prefect server
(prefect_test_harness), a real /metrics endpoint with the drift flag up from the start, and
a webhook receiver on 127.0.0.1. The reproduce step is a `make run-local` that sleeps, so
runs are in flight when the signal comes. Bounds are generous: a loaded 2-core machine."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows import pipeline
from flows.webhook import WebhookReceiver
from tests.support.blackhole import Blackhole, dvc_project_with_remote
from tests.support.metrics import DRIFT, Metrics

pytestmark = [pytest.mark.faults, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
PREFECT_LOG = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \| ")  # a flow run's own log line (the run in flight ends)
MAKEFILE = "run-local:\n\t@echo $$$$ >> step.pids; echo reproducing; sleep 300\n"


@pytest.fixture(scope="module")
def api_url():
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()


def project(tmp_path: Path) -> Path:
    (tmp_path / "Makefile").write_text(MAKEFILE)
    return tmp_path


def child_env(api_url: str, **automation: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOMATION_", "PREFECT_"))}
    env.update({"PREFECT_API_URL": api_url, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
    return {**env, "AUTOMATION_EXECUTOR": "local", **{f"AUTOMATION_{k.upper()}": v for k, v in automation.items()}}


def wait_for(what, predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s:g} s")
        time.sleep(0.5)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def step_pids(proj: Path) -> list[int]:
    path = proj / "step.pids"
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def flow_runs(api_url: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(f"{pipeline.FLOW_NAME}/{pipeline.DEPLOYMENT_NAME}")
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])))
        return len(runs) if not dep.paused else -len(runs)  # negative: the schedule is paused


def failures(hook: WebhookReceiver) -> list[dict]:
    return [p for p in hook.payloads if p.get("type") == "failure"]


def stop(proc: subprocess.Popen, sig: signal.Signals) -> float:
    """Send sig as a terminal would (Ctrl-C: to the whole foreground group) or as `kill` does; seconds to exit."""
    start = time.monotonic()
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"still running 90 s after {sig.name}") from None
    return time.monotonic() - start


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_schedule_stops_on_a_signal_in_one_line_and_triggers_nothing_after(api_url, tmp_path, sig):
    proj, metrics, hook = project(tmp_path), Metrics(DRIFT), WebhookReceiver().__enter__()  # drift flag up at start
    env = child_env(api_url, drift_url=metrics.url, drift_poll_s="2", drift_min_interval_s="0")
    env["AUTOMATION_NOTIFY_URLS"] = hook.apprise_url
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.serve"],
            cwd=proj,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for("drift-triggered run", lambda: ": triggered" in log.read_text(), 180)
        wait_for("step in flight", lambda: step_pids(proj), 180)
        before = log.read_text()
        seconds = stop(proc, sig)
        wait_for("notification of the stopped run", lambda: failures(hook), 60)
    finally:
        metrics.close()
        hook.__exit__()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    after = log.read_text()[len(before) :]
    assert proc.returncode == 0 and seconds < 60, (seconds, after)
    assert "poll failed" not in before and "Traceback" not in before + after  # the first trigger found the deployment
    own = [ln for ln in after.splitlines() if ln.strip() and not PREFECT_LOG.match(ln)]
    assert own == [f"schedule: {sig.name} received: stopped polling, pausing the schedule"], after
    assert len(failures(hook)) == 1 and "Cancelled" in failures(hook)[0]["title"], hook.payloads  # the stopped run
    runs = flow_runs(api_url)
    assert runs < 0  # paused
    time.sleep(8)  # a leftover watcher would poll (every 2 s) and start another run
    assert flow_runs(api_url) == runs
    wait_for("in-flight step stopped", lambda: not any(alive(p) for p in step_pids(proj)), 60)


def test_flow_run_stopped_by_sigterm_notifies_and_exits_within_seconds(api_url, tmp_path):
    proj = project(tmp_path)
    with WebhookReceiver() as hook:
        env = child_env(api_url, notify_urls=hook.apprise_url)
        cmd = [sys.executable, "-m", "flows.pipeline", "--project", ".", "--steps", "reproduce"]
        proc = subprocess.Popen(cmd, cwd=proj, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for("step in flight", lambda: step_pids(proj), 180)
            seconds = stop(proc, signal.SIGTERM)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        wait_for("failure notification", lambda: failures(hook), 30)
    assert seconds < 60 and len(failures(hook)) == 1, (seconds, hook.payloads)
    assert "Crashed" in failures(hook)[0]["title"]
    wait_for("the step stopped with its flow", lambda: not any(alive(p) for p in step_pids(proj)), 30)


def test_hung_remote_is_one_line_per_attempt_and_a_bounded_budget(api_url, tmp_path):
    """push against a remote that never answers: each attempt ends after AUTOMATION_REMOTE_TIMEOUT_S and is
    one line; no traceback; the run ends with the one-line reason."""
    hole = Blackhole()
    proj = dvc_project_with_remote(tmp_path, hole.url)
    subprocess.run(["git", "add", "-A"], cwd=proj, check=True)
    env = child_env(api_url, remote_timeout_s="10", retries="2", retry_delay_s="1", notify_urls="")
    env.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y" * 12})
    cmd = [sys.executable, "-m", "flows.pipeline", "--project", ".", "--steps", "push"]
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=proj, env=env, capture_output=True, text=True, timeout=300)
    finally:
        hole.close()
    seconds, out = time.monotonic() - start, done.stdout + done.stderr
    assert done.returncode == 1 and seconds < 200 and "Traceback" not in out, out
    attempts = [ln for ln in out.splitlines() if "Task run failed with exception: StepFailed" in ln]
    assert len(attempts) == 3 and all("unreachable after 1 attempt (timed out after 10 s)" in a for a in attempts)
    assert len([ln for ln in out.splitlines() if ln.strip()]) <= 15, out
    assert "unreachable after 1 attempt" in json.loads(done.stdout.strip().splitlines()[-1])["message"]


MLFLOW_DOWN = """\
mlflow-check:
\t@echo 'mlflow-check: error: MLflow at http://127.0.0.1:9 rejected the credentials: fix .env' >&2; exit 1
run-local: mlflow-check
\t@echo never
"""


def test_failure_notification_carries_the_steps_own_reason(api_url, tmp_path):
    """`make run-local` stopped by its mlflow-check: the notification names mlflow-check's reason, not make's line."""
    (tmp_path / "Makefile").write_text(MLFLOW_DOWN)
    with WebhookReceiver() as hook:
        env = child_env(api_url, notify_urls=hook.apprise_url)
        cmd = [sys.executable, "-m", "flows.pipeline", "--project", ".", "--steps", "reproduce"]
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        wait_for("failure notification", lambda: failures(hook), 30)
    assert done.returncode == 1
    (sent,) = failures(hook)
    assert "mlflow-check: error: MLflow at http://127.0.0.1:9 rejected the credentials" in sent["message"]
    assert "make: ***" not in sent["message"]
