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
from stages.lib import fsio
from sweep import lost
from tests.e2e.test_sweep import TINY

pytestmark = [pytest.mark.slow]
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


def _train_started(pid: int) -> bool:
    for child in lost.descendants(pid):
        try:
            if b"train" in Path(f"/proc/{child}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def test_killed_queue_worker_fails_its_point_and_the_sweep_goes_on(tmp_path):
    env = sweep_smoke.sandbox_env("local")
    env.update(PIPELINE_LOCK_DIR=str(tmp_path / "locks"), PYTHONPATH=str(REPO))
    (tmp_path / "project").mkdir()
    project = sweep_smoke.prepare(tmp_path / "project", TINY, env)
    cmd = [sys.executable, "-m", "sweep", "run", "--root", str(project), "--grid", "recipes.fast.lr=0.01,0.02"]
    driver = subprocess.Popen(
        [*cmd, "--jobs", "1"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 900
    victim = None
    while victim is None and time.monotonic() < deadline and driver.poll() is None:
        victim = next((p for p in _exec_runs(project) if _train_started(p)), None)
        time.sleep(0.5)
    assert victim is not None, "no experiment reached train"
    worker = lost.worker_parent(victim)
    assert worker is not None
    os.kill(worker, signal.SIGKILL)  # as the OOM killer would
    out, _ = driver.communicate(timeout=900)
    assert driver.returncode == 1, out
    record = fsio.read_json(project / "reports" / "sweep.json")
    first, second = record["names"]
    assert record["states"] == {first: "Failed", second: "Success"}, out
    assert f"sweep: experiment {first} FAILED: its queue worker died" in out
    client = MlflowClient(record["tracking_uri"])
    time.sleep(5)  # an orphan that survived would register now
    versions = client.search_model_versions("name = 'cifar100-classifier'")
    assert sorted(v.tags.get("sweep.exp", "") for v in versions) == ["", second]
    left = [p.name for p in (project / ".dvc" / "tmp" / "exps").iterdir() if p.name.startswith("tmp")]
    assert not left, f"temp workspaces left: {left}"
    assert not _exec_runs(project)
