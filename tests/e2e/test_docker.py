"""`make run` through the dvc-runner and sibling stage containers, on a real Docker engine."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smoke.sandbox import merge
from stages.lib import tracking
from tests.e2e.conftest import E2E, ran, sandbox

pytestmark = [pytest.mark.docker, pytest.mark.slow]
UID = GID = 4321  # not the test's own uid: outputs must belong to whoever invokes `make run`


def make(project: Path, base_image: str, *targets: str, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    cmd = [
        "make",
        "--no-print-directory",
        "-C",
        str(project),
        *targets,
        f"BASE_IMAGE={base_image}",
        f"HOST_UID={UID}",
        f"HOST_GID={GID}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MAKE"))}
    if popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)


def containers(project: Path) -> list[str]:
    """Running stage containers of this project, plus any dvc-runner."""
    found = []
    for label in (f"cifar100.workdir={project}", "com.docker.compose.service=dvc-runner"):
        found += subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label={label}"], capture_output=True, text=True, check=True
        ).stdout.split()
    return found


def launched(output: str) -> dict[str, str]:
    """stage -> container id, from the launcher's log lines."""
    return dict(re.findall(r"launch: stage (\w+) in container (\w+)", output))


def _own(project: Path) -> Path:
    subprocess.run(["chown", "-R", f"{UID}:{GID}", str(project)], check=True)
    return project


@pytest.fixture(scope="module")
def docker_run(tmp_path_factory, base_image):
    root = _own(sandbox(tmp_path_factory.mktemp("docker")))
    done = make(root, base_image, "run")
    assert done.returncode == 0, done.stdout + done.stderr
    return root, done.stdout + done.stderr


def test_each_stage_runs_in_its_own_container(docker_run):
    _, out = docker_run
    ids = launched(out)
    assert list(ids) == ["ingest", "validate", "preprocess", "train", "evaluate", "profile", "register"]
    assert len(set(ids.values())) == 7


def test_outputs_belong_to_the_invoking_user_and_a_champion_exists(docker_run):
    root, _ = docker_run
    for path in [root / "dvc.lock", root / "mlflow.db", *(root / "data").rglob("*"), *(root / "models").rglob("*")]:
        assert (path.stat().st_uid, path.stat().st_gid) == (UID, GID), path
    assert "champion" in json.loads((root / "reports" / "registry.json").read_text())["aliases"]


def _train_tags(project: Path) -> dict[str, str]:
    """Tags of the run that trained the project's models/, read back from its MLflow store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.local_store(project)[0])
    sha = hashlib.sha256((project / "models" / "model.pt").read_bytes()).hexdigest()
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], f"tags.{tracking.MODEL_TAG} = '{sha}'"
    )
    trained = [r.data.tags for r in runs if r.data.tags.get("mlflow.runName", "").startswith("train-")]
    assert len(trained) == 1, f"{len(trained)} train runs in {project}/mlflow.db carry the weights' sha256"
    return trained[0]


def test_make_run_and_make_run_local_give_identical_results(docker_run, tmp_path):
    """The same tiny CPU run under Docker and directly gives the same bytes: one locked environment."""
    root, _ = docker_run
    local = sandbox(tmp_path, E2E)
    venv = Path(sys.prefix)  # this venv, installed from the same lock
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(local), "run-local", f"VENV={venv}", "STAMP="],
        env={k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MAKE", "PIPELINE_"))},
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    model, metrics = Path("models/model.pt"), Path("reports/metrics.json")
    assert (local / model).read_bytes() == (root / model).read_bytes()
    assert json.loads((local / metrics).read_text()) == json.loads((root / metrics).read_text())
    assert (local / "dvc.lock").read_text() == (root / "dvc.lock").read_text()
    assert _train_tags(local)["executor"] == "local" and _train_tags(local)["image.id"] == "none"


def test_mlflow_tags_name_docker_the_image_and_the_lock(docker_run, base_image):
    root, _ = docker_run
    image = make(root, base_image, "-s", "print-stage-image").stdout.strip()
    image_id = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", image], capture_output=True, text=True, check=True
    ).stdout.strip()
    tags = _train_tags(root)
    assert tags["executor"] == "docker"
    assert tags["image.id"] == image_id and tags["image.digest"] == "none"  # built here, never pushed
    lock_sha = hashlib.sha256((root / "env" / "stages.lock").read_bytes()).hexdigest()
    assert tags["env.lock_sha256"] == lock_sha


def test_noop_rerun_starts_no_container(docker_run, base_image):
    root, _ = docker_run
    done = make(root, base_image, "run")
    assert done.returncode == 0 and launched(done.stdout) == {}


def test_edited_stage_reruns_with_the_edited_code(docker_run, base_image):
    root, _ = docker_run
    module = root / "stages" / "register.py"
    module.write_text(module.read_text().replace('print(f"register: ', 'print(f"register (edited): '))
    done = make(root, base_image, "run")
    assert done.returncode == 0, done.stdout
    assert ran(done.stdout) == ["register"] and "register (edited): " in done.stdout


def test_sigint_during_train_leaves_no_container(tmp_path, base_image):
    root = _own(sandbox(tmp_path, merge(E2E, {"recipes": {"fast": {"epochs": 500}}})))
    proc = make(root, base_image, "run", start_new_session=True)
    seen = ""
    deadline = time.monotonic() + 600
    while "launch: stage train in container" not in seen and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, f"make run ended early:\n{seen}"
        seen += line
    time.sleep(3)
    assert containers(root), "train should be running in a container"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    proc.communicate(timeout=300)  # a loaded 2-core machine once took over 2 min to stop
    deadline = time.monotonic() + 60
    while containers(root) and time.monotonic() < deadline:
        time.sleep(1)
    assert containers(root) == []
