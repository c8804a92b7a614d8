"""`make run` under faults, on a real Docker engine: signals, a second run, a killed runner,
and which secrets each container holds (issue 12, items 1-4)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from smoke.sandbox import merge
from tests.e2e.conftest import E2E, dvc, sandbox
from tests.e2e.test_docker import GID, UID, _own

pytestmark = [pytest.mark.docker, pytest.mark.slow]
LONG = merge(E2E, {"recipes": {"fast": {"epochs": 500}}})  # train runs until stopped
SECRETS = {"MLFLOW_TRACKING_PASSWORD": "pw-robust-7f3a9c", "AWS_SECRET_ACCESS_KEY": "aws-robust-51be20"}


def start_run(project: Path, base_image: str, env: dict | None = None, target: str = "run") -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "MAKE"))}
    cmd = ["make", "--no-print-directory", "-C", str(project), target, f"BASE_IMAGE={base_image}"]
    cmd += [f"HOST_UID={UID}", f"HOST_GID={GID}"]
    return subprocess.Popen(
        cmd,
        env={**base, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )


def until_train(proc: subprocess.Popen) -> tuple[str, str]:
    """Read the run's output until train's container starts; (output so far, its container id)."""
    seen = ""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, f"make run ended early:\n{seen}"
        seen += line
        found = re.search(r"launch: stage train in container (\w+)", line)
        if found:
            return seen, found.group(1)
    raise AssertionError(f"train never started:\n{seen}")


def project_containers(project: Path, all_states: bool = True) -> list[str]:
    """This project's stage containers and dvc-runners (compose labels its working dir)."""
    found = set()
    for label in (f"cifar100.workdir={project}", f"com.docker.compose.project.working_dir={project}"):
        cmd = ["docker", "ps", "-q", "--filter", f"label={label}"] + (["-a"] if all_states else [])
        found |= set(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split())
    return sorted(found)


def runner_of(project: Path) -> str:
    cmd = ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project.working_dir={project}"]
    ids = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    assert len(ids) == 1, ids
    return ids[0]


def inspect(cid: str) -> dict:
    return json.loads(subprocess.run(["docker", "inspect", cid], capture_output=True, text=True, check=True).stdout)[0]


def complaints(out: str) -> list[str]:
    """Lines saying something went wrong, but make's own `make: ***` summary."""
    found = [ln for ln in out.splitlines() if re.search(r"error|interrupted|killed|failed|traceback", ln, re.I)]
    return [ln for ln in found if not ln.startswith("make: ***")]


def wait_gone(project: Path, timeout_s: float = 90) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while project_containers(project) and time.monotonic() < deadline:
        time.sleep(1)
    return project_containers(project)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_signal_to_make_run_stops_the_stage_and_leaves_nothing(tmp_path, base_image, sig):
    root = _own(sandbox(tmp_path, LONG))
    proc = start_run(root, base_image)
    seen, _ = until_train(proc)
    time.sleep(3)
    assert len(project_containers(root, all_states=False)) == 2  # the runner and train's container
    if sig == signal.SIGTERM:
        os.kill(proc.pid, sig)  # `kill PID` of make, which passes SIGTERM on to its recipe
    else:
        os.killpg(proc.pid, sig)  # closing the terminal / Ctrl-C: the whole foreground group
    out = seen + proc.communicate(timeout=300)[0]
    assert proc.returncode != 0
    assert wait_gone(root) == [], out  # nothing left behind, not even exited containers
    said = complaints(out)  # one line: the launcher's; dvc's own summary is dropped (runner/outcome.py)
    assert len(said) == 1 and "stage train was interrupted" in said[0] and "rerun `make run` to resume" in said[0], out
    assert f"run: {sig.name}: stopping the dvc-runner" in out
    assert not (root / "models").exists()  # nothing written outside DVC's knowledge


def test_ctrl_c_before_the_runner_exists_still_stops_the_run(tmp_path, base_image):
    """Ctrl-C while compose is still starting: `docker stop` finds no container yet, so the
    wrapper keeps trying until the runner exists (runner/compose-run.sh), and the run stops."""
    root = _own(sandbox(tmp_path, LONG))
    proc = start_run(root, base_image)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # compose has started (after the wrapper's traps); it takes a while to start
        found = subprocess.run(
            ["pgrep", "-s", str(proc.pid), "-f", "run --rm -T --name cifar100-runner-"], capture_output=True
        )
        if found.returncode == 0:
            break
        time.sleep(0.05)
    early = project_containers(root)
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode != 0, out
    assert early == [], f"the runner existed already: not the case under test\n{out}"
    assert "run: SIGINT: stopping the dvc-runner" in out
    assert "launch: stage train in container" not in out, out  # the run did not go on
    assert wait_gone(root) == [], out


def test_second_run_is_refused_and_a_killed_runner_blocks_nothing(tmp_path, base_image):
    root = _own(sandbox(tmp_path, LONG))
    before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    first = start_run(root, base_image, env=SECRETS)
    seen, train = until_train(first)
    runner = runner_of(root)

    # Least privilege: no container's configuration holds a secret; the runner has them as a file.
    for cid in (runner, train):
        config = json.dumps(inspect(cid)["Config"])
        assert not any(value in config for value in SECRETS.values()), cid
    assert "/run/secrets/pipeline" in [m["Destination"] for m in inspect(runner)["Mounts"]]
    assert not any(k.startswith(("MLFLOW_TRACKING_P", "AWS_")) for k in inspect(train)["Config"]["Env"])

    second = start_run(root, base_image)
    out2 = second.communicate(timeout=300)[0]
    assert second.returncode != 0
    refusal = [line for line in out2.splitlines() if "another `make run` is running" in line]
    assert len(refusal) == 1 and f"runner container {runner[:12]}" in refusal[0] and "stage train" in refusal[0], out2
    assert runner_of(root) == runner  # the first still runs

    subprocess.run(["docker", "kill", runner], check=True, capture_output=True)
    out1 = seen + first.communicate(timeout=300)[0]
    assert "the dvc-runner was killed (exit 137" in out1 and "during stage train" in out1, out1
    assert wait_gone(root) == [], out1  # train's container did not outlive its runner
    status = dvc(root, "status", check=False)
    assert status.returncode == 0 and "is busy" not in status.stdout + status.stderr, status.stderr
    after = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    assert not {n for n in after - before if n.startswith("cifar100-secrets")}  # the secret file is gone


@pytest.mark.parametrize("smoke", [False, True], ids=["run", "smoke"])
def test_the_runner_gets_secrets_as_a_file_and_smoke_gets_none(tmp_path, base_image, smoke):
    root = _own(sandbox(tmp_path))
    probe = (
        "probe: build ; $(RUNNER) sh -c 'sed \"s/=.*//; s/^/secret: /\" /run/secrets/pipeline; env | grep -c robust'"
    )
    cmd = ["make", "--no-print-directory", "-s", "-C", str(root), "--eval", probe, "probe"]
    cmd += [f"BASE_IMAGE={base_image}", f"HOST_UID={UID}", f"HOST_GID={GID}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "MAKE"))}
    env.update(SECRETS, **({"PIPELINE_NO_SECRETS": "1"} if smoke else {}))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    names = sorted(line.split(": ")[1] for line in done.stdout.splitlines() if line.startswith("secret: "))
    assert names == ([] if smoke else sorted(SECRETS)), done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0"  # no secret in the runner's environment
    assert not any(value in done.stdout + done.stderr for value in SECRETS.values())


def test_docker_kill_of_a_stage_names_it_and_says_rerunning_resumes(tmp_path, base_image):
    root = _own(sandbox(tmp_path, LONG))
    proc = start_run(root, base_image)
    seen, train = until_train(proc)
    time.sleep(2)
    subprocess.run(["docker", "kill", train], check=True, capture_output=True)
    out = seen + proc.communicate(timeout=180)[0]
    assert proc.returncode != 0
    assert complaints(out) == [next(ln for ln in out.splitlines() if ln.startswith("launch: stage train was killed"))]
    assert "launch: stage train was killed (exit 137: `docker kill`, or out of memory)" in out, out
    assert "train continues from its last epoch checkpoint" in out
    assert wait_gone(root) == [], out
    assert dvc(root, "status", check=False).returncode == 0
