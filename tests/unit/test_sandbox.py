"""smoke/sandbox.py's scratch folder: under the project's .smoke/, gone afterwards however
the block ends (normally, on an error, on SIGTERM), kept on request."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from smoke import sandbox
from tests.conftest import ROOT


def test_scratch_is_under_the_project_and_removed_after_the_block():
    with sandbox.scratch("unit-") as path:
        assert path.parent == ROOT / ".smoke" and path.name.startswith("unit-") and path.is_dir()
        (path / "f").write_text("x")
    assert not path.exists()
    with pytest.raises(RuntimeError), sandbox.scratch("unit-") as path:
        raise RuntimeError("boom")
    assert not path.exists()


def test_scratch_can_be_kept(capsys):
    with sandbox.scratch("unit-", keep=True) as path:
        pass
    try:
        assert path.is_dir() and f"sandbox kept at {path}" in capsys.readouterr().err
    finally:
        path.rmdir()


def test_sigterm_removes_the_scratch_and_exits_143():
    code = "from smoke import sandbox\nimport time\nwith sandbox.scratch('unit-sig-') as p:\n"
    code += "    print(p, flush=True)\n    time.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    path = proc.stdout.readline().strip()
    assert os.path.isdir(path)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert not os.path.exists(path)
