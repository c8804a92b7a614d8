"""The Job a stage becomes under PIPELINE_EXECUTOR=k8s: a pure function of argv, the working
directory, the settings and the runner's environment (no API calls; unit-tested offline and
checked against the Kubernetes schemas by runner/k8s_check.py).

The pod runs the unchanged `python -m stages NAME ARGS` from the stage image, in the project
workspace (a ReadWriteMany PVC) mounted at the runner's own absolute path, so dvc.yaml's
relative paths resolve alike. Secrets go by reference only (secretKeyRef to the user's Secret),
and only to the stages that talk to MLflow. GPU stages get nvidia.com/gpu in limits.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner import credentials, gpu_lease
from runner.k8s_settings import K8sSettings
from runner.stage_spec import MLFLOW_STAGES, SHM_SIZE, stage_env
from stages.lib.cli import PipelineError

APP = "cifar100"
STAGE_LABEL, PROJECT_LABEL, RUN_LABEL = "cifar100/stage", "cifar100/project", "cifar100/run"
WORKDIR_ANNOTATION = "cifar100/workdir"
GPU = "nvidia.com/gpu"
CONTAINER = "stage"


def project_id(workdir: Path) -> str:
    """A label-safe id of the project (its absolute path may be longer than a label value)."""
    return hashlib.sha256(str(workdir).encode()).hexdigest()[:12]


def label_value(text: str) -> str:
    """text as a label value: [A-Za-z0-9-_.], at most 63 characters, alphanumeric at both ends."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63].strip("-_.") or "none"


def job_name(stage: str, workdir: Path) -> str:
    """One name per project and stage: a leftover of a dead runner conflicts (409) and is removed."""
    return f"{APP}-{stage}-{project_id(workdir)}"


def labels(stage: str, workdir: Path, run: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": APP,
        STAGE_LABEL: stage,
        PROJECT_LABEL: project_id(workdir),
        RUN_LABEL: label_value(run),
    }


def wants_gpu(stage: str, environ: Mapping[str, str], settings: K8sSettings) -> int:
    """GPUs for the stage, as the Docker executor decides: GPU stages only, none with PIPELINE_GPUS=none."""
    if stage not in gpu_lease.GPU_STAGES or (environ.get("PIPELINE_GPUS") or "auto") == "none":
        return 0
    return settings.gpus


def env_list(stage: str, environ: Mapping[str, str], settings: K8sSettings) -> list[dict[str, Any]]:
    """The allow-listed settings as values, then the stage's secrets as references to the Secret."""
    digest = settings.image if "@sha256:" in settings.image else "none"
    env = stage_env(environ, settings.image, digest, stage)
    env.pop("PIPELINE_TETHER", None)  # no stdin here: secrets come by reference, the Job dies with its delete
    env["PIPELINE_STAGE_EXECUTOR"] = "k8s"
    entries: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    if stage in MLFLOW_STAGES:
        for name in credentials.STAGE_SECRETS:
            ref = {"name": settings.secret, "key": name, "optional": True}  # a key the user left out is unset
            entries.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
    return entries


def workspace_mount(workdir: Path, settings: K8sSettings) -> Path:
    """Where the PVC's root is mounted, at the same path as on the runner: K8S_MOUNT_PATH, else the
    project whose DVC experiment workspace (`ROOT/.dvc/tmp/exps/NAME`, where a sweep's queue worker
    runs) this is, else workdir itself. The pod's workingDir is workdir, at or under the mount."""
    if settings.mount_path:
        mount = Path(settings.mount_path)
        if mount != workdir and mount not in workdir.parents:
            raise PipelineError(
                f"K8S_MOUNT_PATH={mount} does not hold the project {workdir}: set it to where the "
                f"workspace PVC is mounted on the runner (a folder above or equal to the project)"
            )
        return mount
    if len(workdir.parents) > 4 and [p.name for p in workdir.parents[:3]] == ["exps", "tmp", ".dvc"]:
        return workdir.parents[3]
    return workdir


def pod_spec(argv: list[str], workdir: Path, settings: K8sSettings, environ: Mapping[str, str]) -> dict[str, Any]:
    stage = argv[0]
    resources: dict[str, Any] = settings.stage_resources(stage)
    gpus = wants_gpu(stage, environ, settings)
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.uid,
            "runAsGroup": settings.gid,
            "fsGroup": settings.gid,
        },
        "terminationGracePeriodSeconds": 30,  # the stage cleans its scratch on SIGTERM (exit 143)
        "containers": [
            {
                "name": CONTAINER,
                "image": settings.image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["python", "-m", "stages", *argv],
                "workingDir": str(workdir),
                "env": env_list(stage, environ, settings),
                "resources": resources,
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [
                    {"name": "workspace", "mountPath": str(workspace_mount(workdir, settings))},
                    {"name": "shm", "mountPath": "/dev/shm"},
                ],
            }
        ],
        "volumes": [
            {"name": "workspace", "persistentVolumeClaim": {"claimName": settings.pvc}},
            # PyTorch shares tensors through /dev/shm; a container's default is 64 MB
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE.upper() + "i"}},
        ],
    }
    if gpus:
        resources["limits"] = {**resources.get("limits", {}), GPU: str(gpus)}
        spec["tolerations"] = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
        if settings.gpu_node_selector:
            spec["nodeSelector"] = dict(settings.gpu_node_selector)
    return spec


def job_spec(
    argv: list[str], workdir: Path, settings: K8sSettings, environ: Mapping[str, str], run: str
) -> dict[str, Any]:
    """The batch/v1 Job for one stage (argv = [stage, *args], as the runner got it)."""
    stage = argv[0]
    job_labels = labels(stage, workdir, run)
    meta: dict[str, Any] = {
        "name": job_name(stage, workdir),
        "namespace": settings.namespace,
        "labels": job_labels,
        "annotations": {WORKDIR_ANNOTATION: str(workdir)},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 0,  # a failed stage is the runner's to report, never silently retried
            "ttlSecondsAfterFinished": settings.ttl_s,
            "template": {
                "metadata": {"labels": dict(job_labels)},
                "spec": pod_spec(argv, workdir, settings, environ),
            },
        },
    }
