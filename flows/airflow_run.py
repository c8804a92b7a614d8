"""Run the Airflow DAG with `airflow dags test` from .venv-airflow against a SQLite
database in a scratch AIRFLOW_HOME: used by `make automation-smoke`, the bench and
the tests. The venv is built by .ci/setup-airflow.sh when missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flows.steps import ROOT

AIRFLOW_VENV = Path(os.environ.get("AIRFLOW_VENV", str(ROOT / ".venv-airflow")))
DAG_ID = "cifar100_retrain"
DAGS_FOLDER = ROOT / "flows" / "airflow"


def airflow_bin() -> Path:
    """Airflow's CLI; the venv is (re)built when missing or when it cannot import the DAG's flows.steps."""
    exe = AIRFLOW_VENV / "bin" / "airflow"
    probe = [str(AIRFLOW_VENV / "bin" / "python"), "-c", "import flows.steps"]
    if not exe.exists() or subprocess.run(probe, cwd="/", capture_output=True, timeout=120).returncode:
        subprocess.run([str(ROOT / ".ci" / "setup-airflow.sh")], cwd=ROOT, check=True, timeout=1200)
    return exe


def airflow_env(home: Path, project: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ plus a scratch SQLite Airflow home and the DAG's settings."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AUTOMATION_PROJECT": str(project),
            "AUTOMATION_VENV": sys.prefix,
        }
    )
    return {**env, **(extra or {})}


def migrate(env: dict[str, str]) -> None:
    """Create the SQLite database once per AIRFLOW_HOME."""
    if not Path(env["AIRFLOW_HOME"], "airflow.db").exists():
        done = subprocess.run(
            [str(airflow_bin()), "db", "migrate"], env=env, capture_output=True, text=True, timeout=600
        )
        if done.returncode:
            raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def dag_state(returncode: int, output: str) -> str:
    """The dag run's final state: `airflow dags test` exits non-zero with "DagRun failed" on failure."""
    return "failed" if returncode or "DagRun failed" in output else "success"


def dags_test(env: dict[str, str], timeout_s: float = 1800) -> tuple[str, str]:
    """(final state, output) of one `airflow dags test cifar100_retrain`."""
    migrate(env)
    done = subprocess.run(
        [str(airflow_bin()), "dags", "test", DAG_ID],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_s,
    )
    return dag_state(done.returncode, done.stdout), done.stdout
