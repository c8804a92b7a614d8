"""The team MLflow server as deploy/base/mlflow.yaml runs it (its command and literal settings are
read from there): a real `mlflow server` on a real PostgreSQL (password auth, the password only in
PGPASSWORD) with moto's S3 as the artifact store, and two writer processes logging runs with params,
metrics and artifacts at once; then a real sweep on DVC's queue with 2 parallel workers logging to
it. No run is lost, every artifact is in S3, nothing is "database is locked" (the failure the
sqlite store shows under concurrent writers)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from smoke.servers import Server, free_port, launch
from tests.conftest import ROOT
from tests.support.pg import postgres  # noqa: F401  (fixture)
from tests.support.servers import VENV_BIN, moto_s3  # noqa: F401  (fixture)

RUNS_PER_WRITER = 6
WRITER_TIMEOUT_S = 300  # two cold MLflow imports and 12 runs of ~15 requests on 2 busy cores
PREFIX = "team-mlflow"
READY_TIMEOUT_S = 600  # MLflow's ~50 schema migrations on PostgreSQL: 25 s idle, > 120 s on a loaded 2-core host


def manifest_container() -> dict:
    docs = yaml.safe_load_all((ROOT / "deploy" / "base" / "mlflow.yaml").read_text())
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]


def server_command(port: int) -> list[str]:
    """The manifest's command, on 127.0.0.1 and a free port, with this venv's mlflow."""
    cmd = [str(VENV_BIN / "mlflow"), *manifest_container()["command"][1:]]
    cmd[cmd.index("--host") + 1], cmd[cmd.index("--port") + 1] = "127.0.0.1", str(port)
    return cmd


@pytest.fixture(scope="module")
def team_server(postgres, moto_s3, tmp_path_factory):  # noqa: F811
    postgres.create_database("mlflow")
    literal = {e["name"]: e["value"] for e in manifest_container()["env"] if "value" in e}
    env = {
        **{k: v for k, v in literal.items() if k != "HOME"},
        "MLFLOW_BACKEND_STORE_URI": postgres.url("mlflow"),  # no password: PGPASSWORD, as in the manifest
        "PGPASSWORD": postgres.password,
        "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{moto_s3.bucket}/{PREFIX}",
        "MLFLOW_S3_ENDPOINT_URL": moto_s3.endpoint,
        "AWS_ACCESS_KEY_ID": moto_s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": moto_s3.secret_access_key,
        "AWS_DEFAULT_REGION": moto_s3.region,
    }
    assert literal["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://mlflow@")
    port, workdir = free_port(), tmp_path_factory.mktemp("team-mlflow")
    server = launch("mlflow-team", server_command(port), workdir, env, f"http://127.0.0.1:{port}")
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()


def _wait_ready(server: Server) -> None:
    """smoke.servers.wait_ready's loop with a longer bound: the first start creates the schema."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{server.tail()}")
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{server.name} not ready after {READY_TIMEOUT_S} s:\n{server.tail()}")


def write_concurrently(server: Server, outdir: Path) -> list[dict]:
    env = {"MLFLOW_TRACKING_URI": server.url, "PATH": str(VENV_BIN), "HOME": str(outdir)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.mlflow_writer", name, str(RUNS_PER_WRITER), str(outdir)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=WRITER_TIMEOUT_S)
        assert proc.returncode == 0, f"writer failed: {err[-2000:]}\n{server.tail()}"
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_two_concurrent_writers_lose_nothing(team_server, moto_s3, postgres, tmp_path):  # noqa: F811
    from mlflow import MlflowClient

    results = write_concurrently(team_server, tmp_path)
    logged = {run_id for result in results for run_id in result["runs"]}
    assert len(logged) == 2 * RUNS_PER_WRITER

    client = MlflowClient(team_server.url)
    experiment = client.get_experiment_by_name("team-concurrency")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert {r.info.run_id for r in runs} == logged
    for run in runs:
        assert run.info.status == "FINISHED"
        assert set(run.data.params) == {"writer", "index", "lr"}
        assert len(client.get_metric_history(run.info.run_id, "loss")) == 10
        assert len(client.get_metric_history(run.info.run_id, "acc")) == 10
        assert [a.path for a in client.list_artifacts(run.info.run_id, "notes")] == [f"notes/{run.info.run_name}.txt"]

    notes = [k for k in moto_s3.keys(PREFIX) if k.endswith(".txt")]
    assert len(notes) == 2 * RUNS_PER_WRITER, "every artifact is in the S3 store"
    assert "database is locked" not in team_server.tail()
    assert _runs_in_postgres(postgres) == 2 * RUNS_PER_WRITER


def test_the_registry_alias_lives_in_postgres(team_server):
    """What the model server follows: an alias set through the team server reads back."""
    from mlflow import MlflowClient

    client = MlflowClient(team_server.url)
    client.create_registered_model("cifar100-team")
    version = client.create_model_version("cifar100-team", f"s3://x/{PREFIX}/model", run_id=None)
    client.set_registered_model_alias("cifar100-team", "champion", version.version)
    assert client.get_model_version_by_alias("cifar100-team", "champion").version == version.version


def _runs_in_postgres(pg) -> int:
    import psycopg

    conninfo = f"host=127.0.0.1 port={pg.port} user={pg.user} password={pg.password} dbname=mlflow"
    with psycopg.connect(conninfo) as conn:
        return conn.execute("SELECT count(*) FROM runs WHERE name LIKE 'alpha-%' OR name LIKE 'beta-%'").fetchone()[0]


def _sweep_tiny() -> dict:
    from smoke.sandbox import SMOKE_OVERRIDES

    return {
        **SMOKE_OVERRIDES,
        "data": {"source": "synthetic", "synthetic": {"train_per_class": 6, "test_per_class": 2}},
        "recipes": {"fast": {**SMOKE_OVERRIDES["recipes"]["fast"], "epochs": 1}},
        "validate": {"max_train_test_duplicates": 0},
    }


@pytest.mark.slow
def test_a_two_worker_sweep_logs_every_run_to_the_team_server(team_server, moto_s3, postgres, tmp_path):  # noqa: F811
    """`make sweep` with JOBS=2 and MLFLOW_TRACKING_URI at the team server: the parent run, one child
    run per experiment and their registered versions, all in PostgreSQL, artifacts in S3."""
    from mlflow import MlflowClient

    from smoke import sweep as sweep_smoke

    env = {**sweep_smoke.sandbox_env("local"), "MLFLOW_TRACKING_URI": team_server.url}
    project = tmp_path / "project"
    project.mkdir()
    sweep_smoke.prepare(project, _sweep_tiny(), env)
    summary = sweep_smoke.sweep_smoke(project, ["recipes.fast.lr=0.01,0.02"], 2, env, say=lambda _: None)
    assert summary["failed"] == [] and summary["succeeded"] == 2 and summary["mlflow_child_runs"] == 2

    client = MlflowClient(team_server.url)
    record = json.loads((project / "reports" / "sweep.json").read_text())
    assert record["tracking_uri"] == team_server.url and record["jobs"] == 2
    parent = client.get_run(record["parent_run"])
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(r.data.tags["sweep.exp"] for r in children) == sorted(record["names"])
    assert all(r.info.status == "FINISHED" for r in children)
    versions = client.search_model_versions("name = 'cifar100-classifier'")
    assert sorted(v.tags.get("sweep.exp", "") for v in versions)[1:] == sorted(record["names"])
    assert any("/artifacts/" in k or k.endswith("MLmodel") for k in moto_s3.keys(PREFIX))
    assert "database is locked" not in team_server.tail()
