"""A sample Job per stage for `make k8s-render` (a renderer in ops.k8s.RENDERERS): what
PIPELINE_EXECUTOR=k8s would create for each dvc.yaml stage, built by runner/k8s_spec.job_spec
with placeholder settings (the deploy/ namespace, claim and Secret, the stage image by its
deploy/ name, the project at /workspace as the runner Job mounts it), for review beside the overlays.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from runner.k8s_settings import K8sSettings
from runner.k8s_spec import job_spec

ROOT = Path(__file__).resolve().parents[1]
FILE = "stage-jobs.yaml"
RUNNER_CMD = ["python", "-m", "runner"]
# Placeholders: what deploy/ names (namespace, image); the rest are K8sSettings' defaults.
SAMPLE_NAMESPACE, SAMPLE_IMAGE = "cifar100", "cifar100-stage"
SAMPLE_WORKDIR = Path("/workspace")  # deploy/base/runner.yaml's workingDir and claim mount
SAMPLE_RUN = "sample"


def stage_argvs(dvc_yaml: Path = ROOT / "dvc.yaml") -> dict[str, list[str]]:
    """Each stage's argv as the runner gets it (its cmd after `python -m runner`)."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    argvs = {}
    for name, stage in stages.items():
        words = shlex.split(stage["cmd"])
        if words[:3] != RUNNER_CMD:
            raise ValueError(f"dvc.yaml stages.{name}.cmd does not start with `python -m runner`: {stage['cmd']!r}")
        argvs[name] = words[3:]
    return argvs


def sample_jobs(dvc_yaml: Path = ROOT / "dvc.yaml") -> list[dict[str, Any]]:
    """The Jobs, in dvc.yaml's order; no environment read (model_construct: placeholders only)."""
    settings = K8sSettings.model_construct(namespace=SAMPLE_NAMESPACE, image=SAMPLE_IMAGE)
    return [job_spec(argv, SAMPLE_WORKDIR, settings, {}, SAMPLE_RUN) for argv in stage_argvs(dvc_yaml).values()]


def render_stage_jobs(out: Path) -> list[Path]:
    """OUT/stage-jobs.yaml, all or nothing."""
    path = out / FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump_all(sample_jobs(), sort_keys=False))
    tmp.replace(path)
    return [path]
