"""The launcher's stdin tether with a real stage container: secrets arrive in the stage's
process and nowhere in the container's configuration; a stage whose launcher dies stops."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from runner import launch
from tests.conftest import ROOT
from tests.integration.test_launch_docker import image  # noqa: F401  (fixture)

pytestmark = pytest.mark.docker
PASSWORD = "pw-tether-5d2e81"
# A stand-in evaluate stage: reports what its process and its container configuration hold.
PROBE = """
import json, os, sys, time
def main(argv=None):
    print("probe:", json.dumps({"password": os.environ.get("MLFLOW_TRACKING_PASSWORD"),
        "uri": os.environ.get("MLFLOW_TRACKING_URI")}), flush=True)
    if os.environ.get("PROBE_SLEEP"):
        time.sleep(300)
    return 0
"""


def _project(project):
    shutil.copytree(ROOT / "stages", project / "stages")
    shutil.copytree(ROOT / "runner", project / "runner")
    (project / "stages" / "evaluate.py").write_text(PROBE)


def test_secrets_reach_the_stage_process_only(project, image, monkeypatch, capfd):  # noqa: F811
    _project(project)
    monkeypatch.setenv("PIPELINE_IMAGE", image)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert launch.main(["evaluate"]) == 0
    seen = json.loads(capfd.readouterr().out.split("probe: ", 1)[1].splitlines()[0])
    assert seen == {"password": PASSWORD, "uri": "http://127.0.0.1:9"}
    assert launch.main(["validate", "--params", "absent.yaml"]) != 0  # a stage without MLflow: none sent
    assert PASSWORD not in capfd.readouterr().out


def test_stage_stops_when_its_launcher_is_killed(project, image):  # noqa: F811
    _project(project)
    env = {**os.environ, "PIPELINE_IMAGE": image, "PROBE_SLEEP": "1", "PIPELINE_EXECUTOR": "docker"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "evaluate"], cwd=project, env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().startswith("probe:")  # the stage runs
    ls = ["docker", "ps", "-q", "--filter", f"label=cifar100.workdir={project}"]
    stage = subprocess.run(ls, capture_output=True, text=True, check=True).stdout.split()
    assert len(stage) == 1
    proc.kill()  # SIGKILL: no cleanup in the launcher, as when its runner container is killed
    proc.wait(timeout=30)
    deadline = time.monotonic() + 60
    while subprocess.run(ls, capture_output=True, text=True).stdout.split() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert subprocess.run(ls, capture_output=True, text=True).stdout.split() == []  # it stopped by itself
    subprocess.run(["docker", "rm", "-f", *stage], capture_output=True)  # the exited container (no runner here)
