"""The automation on the real pipeline: the Prefect flow under prefect_test_harness (a real
Prefect server, nothing mocked) and the Airflow DAG under `airflow dags test` (SQLite, its
own venv), both on a synthetic sandbox with a local DVC remote and a bare git origin,
notifications to a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flows import pipeline, settings
from flows.airflow_run import DAGS_FOLDER, airflow_bin, airflow_env, dags_test
from flows.steps import STEPS
from flows.webhook import WebhookReceiver
from smoke.automation import prepare, run_env
from smoke.sandbox import SMOKE_OVERRIDES, merge

pytestmark = pytest.mark.slow
TINY = merge(
    SMOKE_OVERRIDES,
    {"data": {"synthetic": {"train_per_class": 10, "test_per_class": 4}}, "recipes": {"fast": {"epochs": 1}}},
)
SECRET = "pw-automation-secret-0123"
ALL_STAGES = ["ingest", "validate", "preprocess", "train", "evaluate", "profile", "register"]


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, hook):
    base = tmp_path_factory.mktemp("automation")
    project = prepare(base, TINY)
    env = {**run_env(project, "local", hook.apprise_url), "MLFLOW_TRACKING_PASSWORD": SECRET}
    return base, project, env


def _use(monkeypatch, env: dict) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("MLFLOW_TRACKING_URI", "AUTOMATION_FAULT"):
        if key not in env:
            monkeypatch.delenv(key, raising=False)


def _attempts(run_dir: str, step: str) -> int:
    path = pipeline.Path(run_dir) / f"{step}.attempts"
    return len(path.read_text().split()) if path.exists() else 0


def test_prefect_flow_runs_the_pipeline_and_retries_a_transient_failure(harness, sandbox, hook, monkeypatch):
    base, project, env = sandbox
    _use(monkeypatch, {**env, "AUTOMATION_FAULT": "push"})
    monkeypatch.chdir(project)
    before = len(hook.payloads)
    out = pipeline.run_once(str(project), "local", None)
    assert out["state"] == "Completed", out["message"]
    summary = out["summary"]
    assert summary["stages_rerun"] == ALL_STAGES
    assert summary["retried"] == 1 and _attempts(summary["run_dir"], "push") == 2
    assert summary["registry"]["promoted"] and summary["registered_now"]
    assert "reports/metrics.json" in summary["metrics_diff"]
    # pushed: outputs to the DVC remote, dvc.lock + reports to origin
    assert any((base / "dvc-remote").rglob("*"))
    log = subprocess.run(["git", "log", "--format=%s", "-1", "master"], cwd=base / "origin.git", capture_output=True)
    assert b"dvc.lock" in log.stdout
    kinds = [p["type"] for p in hook.payloads[before:]]
    assert kinds == ["success"]  # the promotion
    assert SECRET.encode() not in b"".join(hook.raw)


def test_prefect_validation_failure_is_not_retried(harness, tmp_path, hook, monkeypatch):
    bad = {**TINY, "validate": {"min_train_per_class": 1000}}
    project = prepare(tmp_path, bad)
    _use(monkeypatch, {**run_env(project, "local", hook.apprise_url), "MLFLOW_TRACKING_PASSWORD": SECRET})
    monkeypatch.chdir(project)
    before = len(hook.payloads)
    out = pipeline.run_once(str(project), "local", None)
    assert out["state"] == "Failed"
    assert "reproduce: permanent failure" in out["message"]
    (run,) = (project / ".automation" / "runs").iterdir()
    assert _attempts(str(run), "reproduce") == 1 and _attempts(str(run), "push") == 0
    failures = [p for p in hook.payloads[before:] if p["type"] == "failure"]
    assert len(failures) == 1 and "reproduce" in failures[0]["message"]
    assert SECRET.encode() not in b"".join(hook.raw)


def test_prefect_schedule_is_registered(harness, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("AUTOMATION_CRON", "15 3 * * *")
    cfg = settings.load(tmp_path)
    deployment_id = pipeline.build_deployment(cfg).apply()
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(deployment_id)
    assert deployment.name == pipeline.DEPLOYMENT_NAME
    assert [s.schedule.cron for s in deployment.schedules] == ["15 3 * * *"]
    assert deployment.parameters["project"] == str(tmp_path.resolve())


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    try:
        airflow_bin()
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f".ci/setup-airflow.sh could not build .venv-airflow: {exc}")
    return tmp_path_factory.mktemp("airflow-home")


def test_airflow_dag_imports_without_errors(airflow_home, sandbox):
    _, project, env = sandbox
    aenv = airflow_env(airflow_home, project, env)
    code = (
        "from airflow.dag_processing.dagbag import DagBag; import json, os;"
        "b = DagBag(os.environ['AIRFLOW__CORE__DAGS_FOLDER']);"
        "print(json.dumps({'errors': {k: str(v) for k, v in b.import_errors.items()},"
        "'tasks': [t.task_id for t in b.dags['cifar100_retrain'].tasks]}))"
    )
    python = str(airflow_bin().parent / "python")
    done = subprocess.run([python, "-c", code], env=aenv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"errors": {}, "tasks": list(STEPS)}


def test_airflow_dags_test_on_synthetic_data_retries_a_transient_failure(airflow_home, sandbox, hook):
    """Its first push fails transiently; after the Prefect test's run, its reproduce is a no-op."""
    _, project, env = sandbox
    runs = project / ".automation" / "runs"
    seen = set(runs.iterdir()) if runs.exists() else set()
    state, output = dags_test(airflow_env(airflow_home, project, {**env, "AUTOMATION_FAULT": "push"}), 1200)
    assert state == "success", output[-4000:]
    (run,) = set(runs.iterdir()) - seen
    assert _attempts(str(run), "push") == 2 and _attempts(str(run), "git_sync") == 1
    summary = json.loads((run / "report.json").read_text())
    assert summary["stages_rerun"] in ([], ALL_STAGES)  # [] when the Prefect test ran first
    assert summary["registry"]["model"] == "cifar100-classifier"


def test_smoke_module_runs_as_a_script():
    done = subprocess.run(
        [sys.executable, "-m", "smoke.automation", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "automation-smoke" in done.stdout


OPERATOR_CHECK = """
import cifar100_retrain as d
from airflow.sdk.exceptions import AirflowException, AirflowFailException
for code in (75, 1):
    try:
        d.StepOperator(task_id=f"t{code}", bash_command=f"exit {code}").execute({})
    except AirflowFailException:
        print(code, "fail")
    except AirflowException:
        print(code, "retry")
"""


def test_airflow_retries_only_exit_75(airflow_home, sandbox):
    """The DAG's operator: exit 75 (transient) stays retryable; any other failure fails at once."""
    _, project, env = sandbox
    aenv = {**airflow_env(airflow_home, project, env), "PYTHONPATH": str(DAGS_FOLDER)}
    python = str(airflow_bin().parent / "python")
    done = subprocess.run([python, "-c", OPERATOR_CHECK], env=aenv, capture_output=True, text=True, timeout=300)
    found = [ln for ln in done.stdout.splitlines() if ln in ("75 retry", "75 fail", "1 retry", "1 fail")]
    assert found == ["75 retry", "1 fail"], done.stdout[-3000:] + done.stderr[-3000:]


def test_prefect_cli_prints_the_final_state(harness, tmp_path, monkeypatch, capsys):
    """`make retrain`'s entry point: one JSON line with the state; an unknown step fails the flow."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOMATION_NOTIFY_URLS", raising=False)
    assert pipeline.main(["--project", str(tmp_path), "--executor", "local", "--steps", "report"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["state"] == "Completed" and out["summary"]["stages_rerun"] == [] and out["summary"]["retried"] == 0
    assert pipeline.main(["--project", str(tmp_path), "--steps", "report,deploy"]) == 1
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["state"] == "Failed" and "unknown step 'deploy'" in out["message"]
