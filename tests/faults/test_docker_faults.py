"""`make run` under faults on a real Docker engine (items 1-4; Ctrl-C and `docker kill`
during train): one line each, no stage or runner container left, no secret where it is not used."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.support.faults import (
    Expect,
    Sandbox,
    assert_clean,
    busy_ingest,
    checkpoint,
    finish,
    scratch,
    wait_for,
)

pytestmark = [pytest.mark.faults, pytest.mark.docker, pytest.mark.slow]


def stage_containers(sb: Sandbox, stage: str) -> list[str]:
    done = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=cifar100.stage={stage}"]
        + ["--filter", f"label=cifar100.workdir={sb.root}"],
        capture_output=True,
        text=True,
    )
    return done.stdout.split()


def runner_containers(env: dict) -> list[str]:
    label = f"label=com.docker.compose.project={env['COMPOSE_PROJECT_NAME']}"
    return subprocess.run(["docker", "ps", "-q", "--filter", label], capture_output=True, text=True).stdout.split()


def make_run(sb: Sandbox, env: dict) -> subprocess.Popen:
    return sb.start(["make", "run"], env=env)


def ingest_running(sb: Sandbox, env: dict) -> subprocess.Popen:
    busy_ingest(sb)
    proc = make_run(sb, env)
    wait_for(lambda: scratch(sb.root, "raw") and stage_containers(sb, "ingest"), proc, timeout=180)
    return proc


def test_docker_two_runs(sb, docker_env):
    """item 1: the second `make run` is refused in one line naming the first."""
    first = ingest_running(sb, docker_env)
    # A refusal takes seconds when idle; on a loaded 2-core machine starting its runner container
    # (compose, then the guard) is slow, and a 45 s bound made the case flaky. A second run
    # that is not refused would hang here (the first's ingest trickles on), and fail the words.
    second = finish(make_run(sb, docker_env), timeout=180)
    os.killpg(first.pid, signal.SIGINT)
    finish(first, timeout=120)
    after = sb.dvc("status")  # a killed or finished runner's lock must not block host-side dvc
    exp = Expect(second, words=("another `make run` is running",))
    if "lock" in after.out.lower() and after.rc:
        exp.notes.append("host-side `dvc status` blocked by a stale lock")
    assert_clean(sb, exp)


def test_docker_sighup(sb, docker_env):
    """item 2: closing the terminal stops the stage container too."""
    proc = ingest_running(sb, docker_env)
    os.killpg(proc.pid, signal.SIGHUP)
    exp = Expect(finish(proc, timeout=120))
    time.sleep(2)  # a container outliving its runner would still be listed now
    assert_clean(sb, exp)


def test_docker_credentials(sb, docker_env):
    """item 3: a stage gets only the credentials it uses."""
    secrets = {"MLFLOW_TRACKING_PASSWORD": "faults-secret-pw", "AWS_SECRET_ACCESS_KEY": "faults-secret-key"}
    env = {**docker_env, **secrets}
    proc = ingest_running(sb, env)
    leaks = []
    for cid in stage_containers(sb, "ingest") + runner_containers(env):
        shown = subprocess.run(["docker", "inspect", cid], capture_output=True, text=True).stdout
        leaks += [f"{name} readable in {cid[:12]}" for name, value in secrets.items() if value in shown]
    os.killpg(proc.pid, signal.SIGINT)
    exp = Expect(finish(proc, timeout=120))
    exp.notes += leaks
    assert_clean(sb, exp)


def test_docker_ctrl_c_train(sb, docker_env):
    """Ctrl-C during train: one line naming the stage, no container."""
    sb.params(recipes={"fast": {"epochs": 30}})
    proc = make_run(sb, docker_env)
    wait_for(lambda: stage_containers(sb, "train"), proc, timeout=240)
    time.sleep(5)  # inside the stage's work, not its start
    os.killpg(proc.pid, signal.SIGINT)
    assert_clean(sb, Expect(finish(proc, timeout=120), words=("train", "resum")))


def test_docker_kill_train(sb, docker_env):
    """item 4: `docker kill` of the stage says which stage and that a rerun resumes."""
    sb.params(recipes={"fast": {"epochs": 30}})  # a new fingerprint: train (alone, with what follows) reruns
    proc = make_run(sb, docker_env)
    wait_for(lambda: checkpoint(sb.root) and stage_containers(sb, "train"), proc, timeout=240)
    for cid in stage_containers(sb, "train"):
        subprocess.run(["docker", "kill", cid], capture_output=True)
    assert_clean(sb, Expect(finish(proc, timeout=120), words=("train", "resum")))
