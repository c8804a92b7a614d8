"""Run real stages in-process through the runner's dispatcher (`python -m runner`, local executor),
with argv taken from dvc.yaml."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from runner.__main__ import main as dispatch
from smoke.sandbox import merge
from stages.lib import params
from tests.conftest import ROOT, TINY, write_params

DVC_YAML = params.read_yaml(ROOT / "dvc.yaml")


def stage_argv(name: str) -> list[str]:
    """The stage's argv exactly as dvc.yaml's cmd gives it, minus `python -m runner`."""
    return shlex.split(DVC_YAML["stages"][name]["cmd"])[3:]


def run_stage(name: str) -> int:
    return dispatch(stage_argv(name))


def set_params(project: Path, **sections) -> None:
    raw = merge(params.read_yaml(project / "params.yaml"), sections)
    write_params(project / "params.yaml", raw)


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory, base_params) -> Path:
    """A project dir taken through ingest..train once per session; tests copy it."""
    import os

    root = tmp_path_factory.mktemp("trained")
    write_params(root / "params.yaml", merge(base_params, TINY))
    old = os.getcwd()
    saved = {k: os.environ.pop(k, None) for k in ("MLFLOW_TRACKING_URI", "PIPELINE_EXECUTOR")}
    os.chdir(root)
    try:
        for name in ("ingest", "validate", "preprocess", "train", "profile"):
            assert run_stage(name) == 0, name
    finally:
        os.chdir(old)
        os.environ.update({k: v for k, v in saved.items() if v is not None})
    return root


@pytest.fixture
def trained(trained_template, tmp_path, monkeypatch) -> Path:
    """A private copy of the trained project, as cwd."""
    dest = tmp_path / "proj"
    shutil.copytree(trained_template, dest)
    monkeypatch.chdir(dest)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PIPELINE_EXECUTOR", "local")
    return dest


@pytest.fixture(scope="session")
def serve_template(tmp_path_factory):
    """A registry with two versions of an untrained small net: (root, v1 champion, v2)."""
    from smoke import serving

    return serving.template_store(tmp_path_factory.mktemp("serve-registry"))


@pytest.fixture
def serve_store(serve_template, tmp_path):
    """A private copy of that registry (aliases may be moved freely) with params.yaml: (root, v1, v2)."""
    from smoke import serving

    root, v1, v2 = serve_template
    return serving.copy_store(root, tmp_path / "store"), v1, v2
