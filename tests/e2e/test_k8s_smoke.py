"""`make k8s-smoke`: the smoke pipeline on the k8s executor against kmock, its pods really run by
the test kubelet (as subprocesses; under the docker mark as containers from the stage image), gives
the dvc.lock the local executor gives; every Job spec and rendered manifest valid, no secret value
in any spec, no pod and no sandbox left."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _smoke(*extra: str) -> dict:
    before = {p.name for p in (ROOT / ".smoke").glob("*")} if (ROOT / ".smoke").exists() else set()
    done = subprocess.run(
        [sys.executable, "-m", "smoke.k8s", "--epochs", "1", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["stages"] == 7 and result["jobs_created"] == 7
    assert result["pods_left"] == 0 and result["secret_values_in_specs"] == 0
    assert result["lock_equal_to_local"] is True
    assert result["manifests_valid"] >= 7 + 7  # the executor's Jobs and the sample Jobs, at least
    assert {p.name for p in (ROOT / ".smoke").glob("*")} <= before  # both sandboxes removed
    return result


def test_k8s_smoke_prints_the_expected_json_and_leaves_nothing():
    _smoke()


@pytest.mark.docker
def test_k8s_smoke_with_pods_as_stage_containers(stage_image):
    _smoke("--image", stage_image)
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=cifar100.kubelet"], capture_output=True, text=True, check=True
    )
    assert not left.stdout.split(), "pod containers left behind"
