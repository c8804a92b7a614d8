"""`make sweep` end to end on DVC's real queue: 6 tiny grid points, 2 workers, 3 points that fail in a stage.

Local executor here (with a declared fake GPU pool, so every train/evaluate
takes and frees a real lease), the Docker executor (dvc-runner + sibling
stage containers) under the `docker` mark, and the k8s executor against the
emulated cluster (smoke/k8s.py: every stage a Job whose pod the test kubelet runs). Each checks: the DVC experiments,
one MLflow parent run with a child run per successful experiment, the report's
rows, champion unchanged, the failed point named with its log, nothing left
behind (leases, containers).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from runner import gpu_lease
from smoke import sweep as sweep_smoke
from smoke.sandbox import SMOKE_OVERRIDES
from stages.lib import fsio, tracking
from sweep import dvcq

pytestmark = [pytest.mark.slow]
TINY = {
    **SMOKE_OVERRIDES,
    "data": {"source": "synthetic", "synthetic": {"train_per_class": 6, "test_per_class": 2}},
    "recipes": {"fast": {**SMOKE_OVERRIDES["recipes"]["fast"], "epochs": 1}},
    "validate": {"max_train_test_duplicates": 0},
}
# lr: not 0.05, the baseline: DVC would skip its train. A floor of 1000 train images per class passes
# the grid's typed check (sweep/grid.py) but stops validate at run time: those points fail, the others go on.
GRID = ["recipes.fast.lr=0.01,0.02,0.1", "validate.min_train_per_class=1,1000"]


def _prepared(root: Path, env: dict[str, str]) -> Path:
    project = root / "project"
    project.mkdir()
    return sweep_smoke.prepare(project, TINY, env)


def _check(project: Path, names: list[str], failed: list[str], champion_before: str | None) -> None:
    record = fsio.read_json(project / "reports" / "sweep.json")
    assert record["names"] == names and len(names) == 6
    assert set(dvcq.show(project)) >= set(names)  # every point is a DVC experiment, the failed one too
    assert len(failed) == 3 and all(record["states"][n] == "Failed" for n in failed)
    log = (project / "reports" / "sweep_logs" / f"{failed[0]}.log").read_text()
    assert "validate: error:" in log and record["reasons"][failed[0]].startswith("validate: error:")
    client = MlflowClient(record["tracking_uri"])
    parent = client.get_run(record["parent_run"])
    assert parent.data.tags["sweep.id"] == record["sweep_id"] and parent.info.status == "FAILED"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(r.data.tags["sweep.exp"] for r in children) == sorted(set(names) - set(failed))
    assert all("sweep.param.recipes.fast.lr" in r.data.tags for r in children)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")} == {"sweep/sweep.md", "sweep/sweep.png"}
    md = (project / "reports" / "sweep.md").read_text()
    assert md.count("| Success |") == 3 and md.count("| Failed |") == 3
    assert sweep_smoke.champion(project) == champion_before == "1"
    versions = client.search_model_versions("name = 'cifar100-classifier'")
    assert sorted(v.tags.get("sweep.exp", "") for v in versions)[1:] == sorted(set(names) - set(failed))


def test_local_sweep_with_a_failing_point(tmp_path):
    env = sweep_smoke.sandbox_env("local")
    env.update(PIPELINE_GPU_POOL="0,1", PIPELINE_LOCK_DIR=str(tmp_path / "locks"))
    project = _prepared(tmp_path, env)
    said: list[str] = []
    summary = sweep_smoke.sweep_smoke(project, GRID, 2, env, say=said.append)
    assert summary["experiments"] == 6 and summary["succeeded"] == 3 and summary["mlflow_child_runs"] == 3
    assert not summary["champion_moved"]
    record = fsio.read_json(project / "reports" / "sweep.json")
    _check(project, record["names"], summary["failed"], "1")
    assert any("running" in line for line in said)
    assert any(f"experiment {summary['failed'][0]} FAILED: validate: error:" in line for line in said)
    assert f"; log reports/sweep_logs/{summary['failed'][-1]}.log" in said[-1]
    # Every train/evaluate leased one fake GPU; all leases are free again.
    held = gpu_lease.try_acquire(tmp_path / "locks", ["0", "1"], 2, "test")
    assert held is not None
    gpu_lease.release(held)
    assert {p.name for p in (tmp_path / "locks").iterdir()} == {"gpu-0.lock", "gpu-1.lock"} | {
        p.name for p in (tmp_path / "locks").glob("registry-*.lock")
    }
    _promote_best(project, env)


@pytest.mark.docker
def test_docker_sweep_with_a_failing_point(tmp_path, base_image):
    env = sweep_smoke.sandbox_env("local")
    project = _prepared(tmp_path, env)  # the baseline runs locally: the sweep is what runs in containers
    locks = tmp_path / "locks"
    cmd = ["make", "--no-print-directory", "-C", str(project), "sweep", "EXECUTOR=docker", "JOBS=2"]
    cmd += [f"GRID={' '.join(GRID)}", f"BASE_IMAGE={base_image}", f"PIPELINE_LOCK_DIR={locks}"]
    cmd += [f"VENV={Path(sys.executable).parent.parent}", "STAMP="]
    env = {k: v for k, v in env.items() if not k.startswith("MAKE")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out  # one point failed: make says so
    record = fsio.read_json(project / "reports" / "sweep.json")
    failed = sorted(n for n, s in record["states"].items() if s == "Failed")
    assert f"experiment {failed[0]} FAILED" in out
    assert record["tracking_uri"] == tracking.local_store(project)[0]
    _check(project, record["names"], failed, "1")
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=cifar100.workdir={project}"], capture_output=True, text=True
    ).stdout.split()
    left += subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=cifar100.stage", "--filter", f"volume={project}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert not left, "stage containers left behind"
    assert os.path.isdir(locks)


def _promote_best(project: Path, env: dict[str, str]) -> None:
    """`make promote`'s work on the best experiment: applied, committed, through the normal gate."""
    from sweep import promote

    record = fsio.read_json(project / "reports" / "sweep.json")
    shown = dvcq.show(project)
    done = [n for n in record["names"] if record["states"][n] == "Success"]
    best = max(done, key=lambda n: shown[n]["metrics"]["test.top1"])
    decision = promote.promote(project, best, environ=env, say=lambda text: None)
    client = MlflowClient(record["tracking_uri"])
    version = client.get_model_version("cifar100-classifier", str(decision["version"]))
    assert version.tags["sweep.exp"] == best  # the version the sweep registered, not a new one
    assert (sweep_smoke.champion(project) == str(decision["version"])) == decision["promoted"]
    log = subprocess.run(["git", "log", "--format=%s", "-2"], cwd=project, capture_output=True, text=True).stdout
    assert log.splitlines()[1] == f"Promote sweep experiment {best}" and log.startswith("Register")
    assert fsio.read_json(project / "reports" / "registry.json")["version"] == decision["version"]


def test_k8s_sweep_runs_one_worker_per_experiment_and_every_stage_as_a_job(tmp_path):
    env = sweep_smoke.sandbox_env("k8s")
    project = tmp_path / "project"
    project.mkdir()
    summary = sweep_smoke.on_k8s(project, TINY, None, env, ["recipes.fast.lr=0.01,0.02"])
    assert summary["failed"] == [] and summary["experiments"] == summary["succeeded"] == 2
    assert summary["mlflow_child_runs"] == 2 and not summary["champion_moved"]
    record = fsio.read_json(project / "reports" / "sweep.json")
    assert record["jobs"] == 2  # JOBS unset on k8s: one queue worker per experiment
    # The first run's 7 stages, then in each experiment the 4 that a recipe's lr reaches (train,
    # evaluate, profile, register), each a Job of its own workspace's name; none left running.
    assert summary["jobs_created"] == 7 + 2 * 4 and summary["pods_left"] == 0
