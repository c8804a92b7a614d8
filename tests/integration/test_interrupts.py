"""Real signals to a real stage process: one line, 128 + the signal, and no scratch left;
scratch that a SIGKILL left is removed by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import run_stage, set_params, stage_argv

NOT_A_DIR = "exists and is not a directory (move it away) (errno 20 ENOTDIR)"
# Big enough that generating it takes a while after the scratch dir appears.
SLOW = {"source": "synthetic", "synthetic": {"train_per_class": 300, "test_per_class": 50}}


def _start(project: Path, name: str) -> subprocess.Popen:
    env = {**os.environ, "PIPELINE_EXECUTOR": "local"}  # the project imports from the installed package
    return subprocess.Popen(
        [sys.executable, "-m", "runner", *stage_argv(name)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _scratch(project: Path) -> list[str]:
    return [p.name for p in (project / "data").glob(".raw.*")] if (project / "data").is_dir() else []


def _wait_for_scratch(proc: subprocess.Popen, project: Path) -> None:
    deadline = time.monotonic() + 60
    while not _scratch(project):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "ingest never created its scratch dir"
        time.sleep(0.02)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_signal_during_ingest_leaves_no_scratch_and_one_line(project, sig, code):
    set_params(project, data=SLOW)
    proc = _start(project, "ingest")
    _wait_for_scratch(proc, project)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.strip() == f"ingest: interrupted by {sig.name}; no partial output is left; rerunning starts it over"
    assert list((project / "data").iterdir()) == []


def test_scratch_left_by_sigkill_is_removed_by_the_next_run(project):
    set_params(project, data=SLOW)
    proc = _start(project, "ingest")
    _wait_for_scratch(proc, project)
    proc.kill()
    proc.communicate(timeout=60)
    assert _scratch(project)  # SIGKILL cannot be caught: the scratch stays...
    set_params(project, data={"synthetic": {"train_per_class": 2, "test_per_class": 1}})
    again = _start(project, "ingest")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert _scratch(project) == [] and sorted(p.name for p in (project / "data").iterdir()) == ["raw"]


def test_a_file_where_checkpoints_must_be_fails_before_training(project, capsys):
    """Checked before the data is even read (no data exists here), not after a wasted epoch."""
    (project / "checkpoints").write_text("")
    assert run_stage("train") == 1
    err = capsys.readouterr().err
    assert err.strip() == f"train: error: checkpoints: {NOT_A_DIR}", err


def test_a_file_where_reports_must_be_fails_validate_in_one_line(project, capsys):
    assert run_stage("ingest") == 0
    (project / "reports").write_text("")
    assert run_stage("validate") == 1
    assert capsys.readouterr().err.strip() == f"validate: error: reports: {NOT_A_DIR}"
