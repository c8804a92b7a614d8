"""`make automation-smoke`: the Prefect flow once and the Airflow DAG once on the smoke sandbox.

A scratch git+DVC copy of the pipeline (smoke/sandbox.py, synthetic data) with
a local-folder DVC remote and a bare git origin, so every step is real: pull,
reproduce, push, git sync, report. The Prefect run gets one injected transient
fault (its first `push` fails as if the remote were unreachable) and must retry
it; the Airflow run then finds the pipeline up to date. Notifications go to a
webhook receiver on 127.0.0.1. Prints one JSON line:
{"prefect": state, "airflow": state, "retried": n, "notifications": n}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from flows.airflow_run import airflow_env, dags_test
from flows.steps import retries_in
from flows.webhook import WebhookReceiver
from proc.git import git
from smoke.sandbox import SMOKE_OVERRIDES, make_sandbox, scratch

GIT_ID = {
    "GIT_AUTHOR_NAME": "automation",
    "GIT_AUTHOR_EMAIL": "automation@localhost",
    "GIT_COMMITTER_NAME": "automation",
    "GIT_COMMITTER_EMAIL": "automation@localhost",
}


def _sh(cwd: Path, *cmd: str) -> None:
    subprocess.run(list(cmd), cwd=cwd, env={**os.environ, **GIT_ID}, check=True, capture_output=True, timeout=300)


def _git(cwd: Path, *args: str) -> None:
    git(*args, cwd=cwd, env={**os.environ, **GIT_ID})


def prepare(base: Path, overrides: dict = SMOKE_OVERRIDES) -> Path:
    """base/project: the sandbox, with DVC remote base/dvc-remote and git origin base/origin.git."""
    project = base / "project"
    project.mkdir(parents=True)
    make_sandbox(project, overrides)
    _git(base, "init", "-q", "--bare", str(base / "origin.git"))
    _git(project, "remote", "add", "origin", str(base / "origin.git"))
    _sh(project, sys.executable, "-m", "dvc", "remote", "add", "-q", "-d", "local", str(base / "dvc-remote"))
    with open(project / ".gitignore", "a") as f:
        f.write("/.automation/\n")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "automation sandbox: remote and origin")
    return project


def run_env(project: Path, executor: str, hook_url: str) -> dict[str, str]:
    """The runs' environment: the sandbox's own MLflow store, fast retries, the receiver."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AUTOMATION_", "DAGSHUB_"))}
    env.update(GIT_ID)
    env.update(
        {
            "AUTOMATION_EXECUTOR": executor,
            "AUTOMATION_VENV": sys.prefix,
            "AUTOMATION_RETRIES": "2",
            "AUTOMATION_RETRY_DELAY_S": "1",
            "AUTOMATION_NOTIFY_URLS": hook_url,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",  # 20 s is too short on busy cores
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    return env


def prefect_once(project: Path, env: dict[str, str], prefect_home: Path) -> dict:
    """One flow run in a fresh process (its own ephemeral Prefect server under prefect_home)."""
    cmd = [sys.executable, "-m", "flows.pipeline", "--project", str(project)]
    env = {**env, "PREFECT_HOME": str(prefect_home)}
    done = subprocess.run(cmd, cwd=project, env=env, stdout=subprocess.PIPE, text=True, timeout=1800)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"state": "Crashed", "summary": {}, "message": done.stdout[-500:]}


def smoke(base: Path, executor: str) -> dict:
    project = prepare(base)
    with WebhookReceiver() as hook:
        env = run_env(project, executor, hook.apprise_url)
        prefect = prefect_once(project, {**env, "AUTOMATION_FAULT": "push"}, base / "prefect")
        airflow, output = dags_test(airflow_env(base / "airflow", project, env))
        if airflow != "success":
            print(output[-4000:], file=sys.stderr)
        runs = sorted((project / ".automation" / "runs").iterdir())
        return {
            "prefect": prefect["state"],
            "airflow": airflow,
            "retried": sum(retries_in(r) for r in runs),
            "notifications": len(hook.payloads),
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executor", choices=("local", "docker"), default="local")
    ap.add_argument("--keep", action="store_true", help="keep the sandbox for inspection")
    args = ap.parse_args()
    with scratch("automation-", keep=args.keep) as base:
        result = smoke(base, args.executor)
    print(json.dumps(result))
    ok = result["prefect"] == "Completed" and result["airflow"] == "success" and result["retried"] >= 1
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
