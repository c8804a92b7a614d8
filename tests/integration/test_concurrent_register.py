"""Registers racing on the champion alias: the lock makes read-decide-write one at a time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import mlflow
import torch
from mlflow import MlflowClient

from stages.lib import fsio, sweepmode, tracking

SCORES = (0.30, 0.90, 0.60)  # the 0.90 model must end as champion, whatever the finishing order


def _variant(project, i: int, top1: float) -> tuple[str, str]:
    """A copy of the trained model with different weights (so a new version) and a known test top-1."""
    models = project / f"models_{i}"
    shutil.copytree(project / "models", models)
    state = torch.load(models / "model.pt", weights_only=True)
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = state[first] + (i + 1) * 1e-3
    torch.save(state, models / "model.pt")
    fsio.write_json(project / f"metrics_{i}.json", {"test": {"top1": top1, "top5": 1.0}})
    return str(models), f"metrics_{i}.json"


def test_three_concurrent_registers_leave_the_best_as_champion(trained, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIPELINE_SWEEP"))}
    env.update(PIPELINE_EXECUTOR="local", PIPELINE_LOCK_DIR=str(tmp_path / "locks"))
    procs = []
    for i, top1 in enumerate(SCORES):
        model_dir, metrics = _variant(trained, i, top1)
        argv = ["--params", "params.yaml", "--model", model_dir, "--metrics", metrics]
        argv += ["--profile", "reports/reference_profile.json", "--out", f"reg_{i}.json"]
        procs.append(subprocess.Popen([sys.executable, "-m", "runner", "register", *argv], cwd=trained, env=env))
    assert [p.wait(timeout=600) for p in procs] == [0, 0, 0]
    results = [fsio.read_json(trained / f"reg_{i}.json") for i in range(3)]
    best = results[SCORES.index(max(SCORES))]
    mlflow.set_tracking_uri(tracking.local_store(trained)[0])
    champion = MlflowClient().get_model_version_by_alias("cifar100-classifier", "champion")
    assert int(champion.version) == best["version"]
    assert float(champion.tags["metric.test_top1"]) == max(SCORES)
    assert sorted(r["version"] for r in results) == [1, 2, 3]


def test_alias_lock_serialises_read_decide_write(tmp_path, monkeypatch):
    """Threads that read a shared 'champion', pause, then write the better one: with the lock none is lost."""
    monkeypatch.setenv("PIPELINE_LOCK_DIR", str(tmp_path / "locks"))
    state = {"champion": 0.0}

    def register(score: float) -> None:
        with sweepmode.alias_lock("sqlite:///x.db", "m"):
            current = state["champion"]
            time.sleep(0.05)  # without the lock every thread would read 0.0 here and the last write would win
            if score > current:
                state["champion"] = score

    threads = [threading.Thread(target=register, args=(s,)) for s in (0.9, 0.3, 0.6, 0.5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert state["champion"] == 0.9
