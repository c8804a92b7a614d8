"""`python -m stages`: the one entry point every dvc.yaml cmd goes through."""

import subprocess
import sys

from stages import __main__ as entry
from stages.lib import cli
from tests.conftest import ROOT


def test_unknown_stage_prints_usage(capsys):
    assert entry.main(["fit"]) == 2
    usage = "usage: python -m stages {ingest,validate,preprocess,train,evaluate,profile,register}"
    assert usage in capsys.readouterr().err
    assert entry.main([]) == 2


def test_unknown_executor_is_named(monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_EXECUTOR", "k8s")
    assert entry.main(["validate"]) == 2
    assert "PIPELINE_EXECUTOR must be one of local, docker, got 'k8s'" in capsys.readouterr().err


def test_local_executor_runs_the_stage_in_process(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_EXECUTOR", "local")
    missing = tmp_path / "params.yaml"
    assert entry.main(["validate", "--params", str(missing), "--raw", "r", "--report", "x.json"]) == 1
    assert capsys.readouterr().err == f"validate: error: {missing}: file not found\n"


def test_expected_failures_are_one_line_without_traceback(capsys):
    def body(argv):
        raise cli.PipelineError("data/raw: broken")

    assert cli.run("stage", body, []) == 1
    assert capsys.readouterr().err == "stage: error: data/raw: broken\n"


def test_module_entry_point_exit_code():
    done = subprocess.run(
        [sys.executable, "-m", "stages", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "usage:" in done.stderr
