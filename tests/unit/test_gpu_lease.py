"""GPU leases on a declared fake pool: disjoint ids, a waiter, a killed holder frees its lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from runner import gpu_lease
from stages.lib.cli import PipelineError


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"PIPELINE_GPU_POOL": "0,1,2", "PIPELINE_LOCK_DIR": str(tmp_path / "locks"), "PIPELINE_SWEEP_ID": "s1"}


def test_pool_sources(monkeypatch):
    assert gpu_lease.pool({"PIPELINE_GPU_POOL": "0, 1,2", "CUDA_VISIBLE_DEVICES": "5"}) == ["0", "1", "2"]
    assert gpu_lease.pool({"CUDA_VISIBLE_DEVICES": "3,1"}) == ["3", "1"]
    assert gpu_lease.pool({"CUDA_VISIBLE_DEVICES": ""}) == []
    monkeypatch.setattr(gpu_lease.shutil, "which", lambda name: None)
    assert gpu_lease.pool({}) == []
    with pytest.raises(PipelineError, match="PIPELINE_GPU_POOL must be a comma-separated list"):
        gpu_lease.pool({"PIPELINE_GPU_POOL": "0;1"})


def test_wanted_by_mode():
    pool = ["0", "1", "2"]
    assert gpu_lease.wanted({}, pool) == (3, None)  # one pipeline on the host: all GPUs (DDP)
    assert gpu_lease.wanted({"PIPELINE_GPUS": "none"}, pool) == (0, None)
    assert gpu_lease.wanted({}, []) == (0, None)
    assert gpu_lease.wanted({"PIPELINE_GPUS": "2,0"}, pool) == (2, ["2", "0"])
    assert gpu_lease.wanted({"PIPELINE_SWEEP_ID": "s"}, pool) == (1, None)
    assert gpu_lease.wanted({"PIPELINE_SWEEP_ID": "s", "PIPELINE_GPUS_PER_RUN": "2"}, pool) == (2, None)
    with pytest.raises(PipelineError, match="PIPELINE_GPUS_PER_RUN must be a whole number from 1 to 3"):
        gpu_lease.wanted({"PIPELINE_SWEEP_ID": "s", "PIPELINE_GPUS_PER_RUN": "4"}, pool)
    with pytest.raises(PipelineError, match="names 7, not in the GPU pool"):
        gpu_lease.wanted({"PIPELINE_GPUS": "7"}, pool)


def test_concurrent_leases_are_disjoint_and_a_fourth_waits(env):
    said: list[str] = []
    with gpu_lease.lease(env, "a") as a, gpu_lease.lease(env, "b") as b, gpu_lease.lease(env, "c") as c:
        assert sorted(a + b + c) == ["0", "1", "2"]
        got: list = []

        def fourth():
            with gpu_lease.lease(env, "d", say=said.append, poll_s=0.05) as d:
                got.append(d)

        waiter = threading.Thread(target=fourth)
        waiter.start()
        deadline = time.monotonic() + 10
        while not said and time.monotonic() < deadline:
            time.sleep(0.02)
        assert said and said[0].startswith("gpu-lease: waiting for 1 free GPU(s) of 0,1,2")
        assert "GPU 0: a" in said[0] and not got
    waiter.join(timeout=10)
    assert got and len(got[0]) == 1 and said[-1] == f"gpu-lease: got GPU(s) {got[0][0]}"


def test_wait_is_bounded(env):
    env = {**env, "PIPELINE_GPU_POOL": "0", "PIPELINE_GPU_LEASE_TIMEOUT_S": "0.1"}
    with gpu_lease.lease(env, "holder"):
        with pytest.raises(PipelineError, match=r"no 1 GPU\(s\) of 0 came free in 0 s"):
            with gpu_lease.lease(env, "late", say=lambda t: None, poll_s=0.05):
                pass


def test_killed_holder_frees_its_lease(env, tmp_path):
    """A process holding GPU 0..2 is SIGKILLed: its flocks go with it."""
    script = textwrap.dedent(
        """
        import os, sys, time
        from runner import gpu_lease
        env = dict(os.environ, PIPELINE_SWEEP_ID="", PIPELINE_GPUS="auto")
        with gpu_lease.lease(env, "doomed") as ids:
            print(",".join(ids), flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env={**os.environ, **env}, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "0,1,2"
        assert gpu_lease.try_acquire(gpu_lease.lock_dir(env), ["0", "1", "2"], 1, "x") is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with gpu_lease.lease(env, "next", say=lambda t: None, poll_s=0.05) as ids:
        assert ids == ["0"]


def test_local_stage_sets_cuda_visible_devices(env):
    environ = dict(env)
    with gpu_lease.local_stage("train", environ):
        assert environ["CUDA_VISIBLE_DEVICES"] == environ["PIPELINE_GPU_LEASED"] == "0"
        inner = dict(environ)  # e.g. a container whose launcher leased: no second lease
        with gpu_lease.local_stage("train", inner):
            assert inner["CUDA_VISIBLE_DEVICES"] == "0"
    plain = dict(env)
    with gpu_lease.local_stage("register", plain):
        assert "CUDA_VISIBLE_DEVICES" not in plain


def test_container_lease(env):
    with gpu_lease.container_lease("train", env) as a, gpu_lease.container_lease("evaluate", env) as b:
        assert {a["PIPELINE_GPUS"], b["PIPELINE_GPUS"]} == {"0", "1"}
        assert a["PIPELINE_GPU_LEASED"] == a["PIPELINE_GPUS"]
    with gpu_lease.container_lease("register", env) as c:
        assert c["PIPELINE_GPUS"] == "none"
    cpu = {"CUDA_VISIBLE_DEVICES": ""}
    with gpu_lease.container_lease("train", cpu) as d:
        assert d is cpu
