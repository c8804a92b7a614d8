"""Airflow 3 DAG `cifar100_retrain`: the same steps as the Prefect flow, through the same entry points.

Parsed by Airflow in its own venv (.venv-airflow, see .ci/setup-airflow.sh, which
installs the project there without its dependencies); it imports only flows.steps
(stdlib only) from the project. Each task is a BashOperator
running `python -m flows.steps STEP -- <entry point>` with the project's venv,
so a task fails with exit 75 when a retry may help (then Airflow retries, with
exponential backoff) and with any other code when it cannot (then the task
fails at once, no retry). A failed task notifies through flows.notify (Apprise).

Settings come from the environment the scheduler (or `airflow dags test`) runs in:
AUTOMATION_PROJECT (project dir, default: this checkout), AUTOMATION_VENV (the
project's venv, default <project>/.venv), AUTOMATION_EXECUTOR (docker|local),
AUTOMATION_CRON, AUTOMATION_RETRIES, AUTOMATION_RETRY_DELAY_S, AUTOMATION_STEPS
(a comma-separated subset, for benches), AUTOMATION_TIMEOUT_<STEP>_S,
AUTOMATION_REMOTE_TIMEOUT_S (one attempt of a pull or push; read by flows.steps).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from flows.steps import EX_TEMPFAIL, STEPS, commands

ROOT = Path(__file__).resolve().parents[2]

PROJECT = Path(os.environ.get("AUTOMATION_PROJECT", str(ROOT))).resolve()
VENV = Path(os.environ.get("AUTOMATION_VENV", str(PROJECT / ".venv")))
EXECUTOR = os.environ.get("AUTOMATION_EXECUTOR", "docker")
CHOSEN = [s for s in os.environ.get("AUTOMATION_STEPS", ",".join(STEPS)).split(",") if s in STEPS]
DEFAULT_TIMEOUTS_S = {"pull": 1800, "reproduce": 6 * 3600, "push": 1800, "git_sync": 600, "report": 300}
TIMEOUTS_S = {s: float(os.environ.get(f"AUTOMATION_TIMEOUT_{s.upper()}_S", t)) for s, t in DEFAULT_TIMEOUTS_S.items()}


class StepOperator(BashOperator):
    """A BashOperator that retries only transient failures (exit 75 from flows.steps)."""

    def execute(self, context):
        try:
            return super().execute(context)
        except AirflowException as exc:
            if str(exc).rstrip(".").endswith(f"exit code {EX_TEMPFAIL}"):
                raise  # transient: Airflow retries it
            raise AirflowFailException(f"{self.task_id}: permanent failure, not retried ({exc})") from exc


def notify_failure(context) -> None:
    """Failure callback: one notification through the project's venv (Apprise lives there)."""
    ti = context.get("task_instance")
    title = f"cifar100_retrain task {getattr(ti, 'task_id', '?')} failed"
    body = f"run {context.get('run_id')}: {context.get('exception')}"
    subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "flows.notify", "failure", title, body],
        cwd=PROJECT,  # `python -m` imports the project from its cwd
        timeout=60,
        check=False,
    )


def step_command(step: str, cmd: list[str]) -> str:
    guard = [str(VENV / "bin" / "python"), "-m", "flows.steps", "--project", str(PROJECT)]
    guard += ["--timeout", f"{TIMEOUTS_S[step]:g}"]
    # run_id is templated by Airflow; flows.steps makes it a safe folder name.
    return f"{shlex.join(guard)} --run 'airflow-{{{{ run_id }}}}' {step} -- {shlex.join(cmd)}"


default_args = {
    "owner": "cifar100",
    "retries": int(os.environ.get("AUTOMATION_RETRIES", "3")),
    "retry_delay": timedelta(seconds=float(os.environ.get("AUTOMATION_RETRY_DELAY_S", "10"))),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "on_failure_callback": notify_failure,
}

with DAG(
    dag_id="cifar100_retrain",
    description="pull, reproduce (dvc repro via make), push, git sync, report",
    schedule=os.environ.get("AUTOMATION_CRON", "0 2 * * *"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["cifar100"],
) as dag:
    cmds = commands(EXECUTOR, str(VENV / "bin" / "python"), VENV)
    previous = None
    for name in CHOSEN:
        op = StepOperator(
            task_id=name,
            bash_command=step_command(name, cmds[name]),
            cwd=str(PROJECT),
            env={"PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"},
            append_env=True,
            execution_timeout=timedelta(seconds=TIMEOUTS_S[name] + 60),
        )
        if previous is not None:
            previous >> op
        previous = op
