import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_smoke_prints_one_json_line_and_leaves_the_project_alone():
    lock = ROOT / "dvc.lock"
    before = lock.read_bytes() if lock.exists() else None
    done = subprocess.run(
        [sys.executable, "-m", "smoke.pipeline", "--epochs", "1"], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result) == {"model", "version", "aliases", "test_top1", "reproduced"}
    assert result["version"] == 1 and "champion" in result["aliases"]
    assert result["reproduced"] == "identical"  # rebuilt from its own record, same weights on CPU
    assert (lock.read_bytes() if lock.exists() else None) == before
    assert not list((ROOT / ".smoke").glob("run-*"))  # the sandbox is removed
