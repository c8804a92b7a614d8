"""`python -m runner`: the one entry point every dvc.yaml cmd goes through (it picks the executor);
`python -m stages`: one stage in this process, nothing else."""

import ast
import subprocess
import sys

import pytest

from runner import __main__ as runner_entry
from stages import __main__ as stages_entry
from stages.lib import cli
from tests.conftest import ROOT

STAGE_LIST = "{ingest,validate,preprocess,train,evaluate,profile,register}"


@pytest.mark.parametrize("entry, prog", [(runner_entry, "runner"), (stages_entry, "stages")])
def test_unknown_stage_prints_usage(entry, prog, capsys):
    assert entry.main(["fit"]) == 2
    assert f"usage: python -m {prog} {STAGE_LIST}" in capsys.readouterr().err
    assert entry.main([]) == 2


def test_unknown_executor_is_named(monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_EXECUTOR", "nomad")
    assert runner_entry.main(["validate"]) == 2
    assert "PIPELINE_EXECUTOR must be one of local, docker, k8s, got 'nomad'" in capsys.readouterr().err


@pytest.mark.parametrize("entry", [runner_entry, stages_entry])
def test_the_stage_runs_in_process(entry, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_EXECUTOR", "local")
    missing = tmp_path / "params.yaml"
    assert entry.main(["validate", "--params", str(missing), "--raw", "r", "--report", "x.json"]) == 1
    assert capsys.readouterr().err == f"validate: error: {missing}: file not found\n"


def test_stages_never_import_the_runner():
    """The ML core sits below the runner: `python -m stages` runs a stage and knows no executor."""
    for path in (ROOT / "stages").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "runner" or n.startswith("runner.") for n in names), path


def test_expected_failures_are_one_line_without_traceback(capsys):
    def body(argv):
        raise cli.PipelineError("data/raw: broken")

    assert cli.run("stage", body, []) == 1
    assert capsys.readouterr().err == "stage: error: data/raw: broken\n"


@pytest.mark.parametrize("prog", ["runner", "stages"])
def test_module_entry_point_exit_code(prog):
    done = subprocess.run([sys.executable, "-m", prog, "nope"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "usage:" in done.stderr
