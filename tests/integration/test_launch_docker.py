"""The launcher in-process against a real Docker engine (stage image built by `make build`)."""

import os
import shutil

import pytest

from runner import launch, stage_spec
from stages.lib import fsio
from tests.conftest import ROOT
from tests.integration.conftest import run_stage, stage_argv

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def image(stage_image) -> str:
    return stage_image


def test_stage_runs_in_a_sibling_container_and_returns_its_exit_code(project, image, monkeypatch, capfd):
    monkeypatch.setenv("PIPELINE_IMAGE", image)
    monkeypatch.setenv("PIPELINE_GPUS", "auto")
    shutil.copytree(ROOT / "stages", project / "stages")  # the container runs the mounted checkout's code
    shutil.copytree(ROOT / "runner", project / "runner")  # its stdin tether (secrets, the runner's end)
    assert run_stage("ingest") == 0  # in-process, to make data
    assert launch.main(stage_argv("validate")) == 0
    out = capfd.readouterr()
    assert "launch: stage validate in container" in out.err and "validate: passed" in out.out
    report = project / "reports" / "validate.json"
    assert fsio.read_json(report)["train"]["images"] == 1200
    assert report.stat().st_uid == os.getuid()
    (project / "params.yaml").write_text("nonsense: [\n")
    assert launch.main(stage_argv("validate")) == 1  # the stage's own failure code comes back


def test_missing_image_is_never_pulled(project, monkeypatch, capsys, image):
    monkeypatch.setenv("PIPELINE_IMAGE", "cifar100-stage:does-not-exist")
    assert launch.main(["validate"]) == 1
    assert "not found: build it with `make build`" in capsys.readouterr().err


def test_forced_gpu_without_runtime_fails_clearly(project, monkeypatch, capsys, image):
    import docker

    if stage_spec.has_gpu_runtime(docker.from_env().info()):
        pytest.skip("this daemon has GPUs")
    monkeypatch.setenv("PIPELINE_IMAGE", image)
    monkeypatch.setenv("PIPELINE_GPUS", "all")
    assert launch.main(["validate"]) == 1
    assert "no NVIDIA runtime or CDI devices" in capsys.readouterr().err
