"""A sweep whose queue worker is killed mid-experiment (as the OOM killer would), on DVC's real queue.

The driver sees the dead worker, fails that point in one line, starts a worker
for the queued one, exits 1; the lost experiment registers no model version
and leaves no temp workspace under .dvc/tmp/exps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from smoke import sweep as sweep_smoke
from stages.lib import fsio, tracking
from sweep import dvcq, lost
from tests.e2e.test_sweep import TINY

pytestmark = [pytest.mark.faults, pytest.mark.slow]
REPO = Path(__file__).parents[2]


def _exec_runs(project: Path) -> list[int]:
    """Live `dvc exp exec-run` processes of this project (their infofile lies under it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"exec-run" in cmd and any(str(project).encode() in part for part in cmd):
                found.append(int(entry.name))
    return found


def _computing(pid: int) -> bool:
    """Whether exec-run process PID is in a stage before register (so the orphan would register later)."""
    for child in lost.descendants(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"runner" in cmd and any(stage in cmd for stage in (b"train", b"evaluate", b"profile")):
            return True
    return False


def test_killed_queue_worker_fails_its_point_and_the_sweep_goes_on(tmp_path):
    env = sweep_smoke.sandbox_env("local")
    env.update(PIPELINE_LOCK_DIR=str(tmp_path / "locks"), PYTHONPATH=str(REPO))
    env["PIPELINE_SWEEP_TIMEOUT_S"] = "600"  # the unfixed driver waited for ever: a bound to fail on
    (tmp_path / "project").mkdir()
    project = sweep_smoke.prepare(tmp_path / "project", TINY, env)
    cmd = [sys.executable, "-m", "sweep", "run", "--root", str(project), "--grid", "recipes.fast.lr=0.01,0.02"]
    driver = subprocess.Popen(
        [*cmd, "--jobs", "1"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 900
    victim = None
    while victim is None and time.monotonic() < deadline and driver.poll() is None:
        victim = next((p for p in _exec_runs(project) if _computing(p)), None)
        time.sleep(0.2)
    assert victim is not None, "no experiment reached train"
    worker = lost.worker_parent(victim)
    assert worker is not None
    os.kill(worker, signal.SIGKILL)  # as the OOM killer would
    out, _ = driver.communicate(timeout=900)
    assert driver.returncode == 1, out
    record = fsio.read_json(project / "reports" / "sweep.json")
    (failed,) = [n for n, s in record["states"].items() if s == "Failed"]
    (done,) = [n for n, s in record["states"].items() if s == "Success"]
    assert f"sweep: experiment {failed} FAILED: its queue worker died" in out
    client = MlflowClient(record["tracking_uri"])
    time.sleep(5)  # an orphan that survived would register now
    versions = client.search_model_versions("name = 'cifar100-classifier'")
    assert sorted(v.tags.get("sweep.exp", "") for v in versions) == ["", done]  # the baseline's and done's
    left = [p.name for p in (project / ".dvc" / "tmp" / "exps").iterdir() if p.name.startswith("tmp")]
    assert not left, f"temp workspaces left: {left}"
    assert not _exec_runs(project)


def _driver(project: Path, env: dict[str, str], lr: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "sweep", "run", "--root", str(project), "--grid", f"recipes.fast.lr={lr}"]
    return subprocess.Popen(
        [*cmd, "--jobs", "1"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _when_computing(project: Path, driver: subprocess.Popen) -> None:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and driver.poll() is None:
        if any(_computing(p) for p in _exec_runs(project)):
            return
        time.sleep(0.2)
    raise AssertionError("no experiment reached train")


def _parent_status(project: Path, out: str) -> str:
    sweep_id = out.split("sweep ", 1)[1].split(":", 1)[0]
    record = fsio.read_json(project / "reports" / "sweep.json")
    assert record["sweep_id"] == sweep_id
    return MlflowClient(record["tracking_uri"]).get_run(record["parent_run"]).info.status


def test_ctrl_c_and_a_killed_driver_leave_nothing_the_next_sweep_trips_on(tmp_path):
    env = sweep_smoke.sandbox_env("local")
    env.update(PIPELINE_LOCK_DIR=str(tmp_path / "locks"), PYTHONPATH=str(REPO), PIPELINE_SWEEP_TIMEOUT_S="600")
    (tmp_path / "project").mkdir()
    project = sweep_smoke.prepare(tmp_path / "project", TINY, env)
    first = _driver(project, env, "0.01,0.02")
    _when_computing(project, first)
    other = _driver(project, env, "0.5")  # a second sweep while one runs: refused, nothing queued
    out, _ = other.communicate(timeout=300)
    assert other.returncode == 1 and out.startswith("sweep: error: another sweep runs in ") and out.count("\n") == 1
    first.send_signal(signal.SIGINT)
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 130, out
    assert out.splitlines()[-1] == "sweep: interrupted: its experiments stopped, its MLflow parent run ended as KILLED"
    assert "Traceback" not in out and _parent_status(project, out) == "KILLED"
    assert not [n for n, s in dvcq.status(project).items() if s not in dvcq.DONE]
    second = _driver(project, env, "0.03,0.04")
    _when_computing(project, second)
    second.kill()  # a driver killed outright: its experiments stay in the queue
    out, _ = second.communicate(timeout=60)
    third = _driver(project, env, "0.1")
    out3, _ = third.communicate(timeout=900)
    assert third.returncode == 0, out3
    assert "sweep: cleared what a dead sweep left: 1 running experiment(s) killed, 1 queued removed" in out3
    assert MlflowClient(tracking.local_store(project)[0]).get_run(_parent_id(out)).info.status == "KILLED"
    left = [p.name for p in (project / ".dvc" / "tmp" / "exps").iterdir() if p.name.startswith("tmp")]
    assert not left, f"temp workspaces left: {left}"


def _parent_id(out: str) -> str:
    return out.split("(MLflow parent run ", 1)[1].split(")", 1)[0]
