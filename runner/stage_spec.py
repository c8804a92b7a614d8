"""What a stage container gets (runner/launch.py starts it): the allow-listed environment,
the secrets of the stages that talk to MLflow (sent over stdin, never in its configuration),
the GPU request, the mounts and labels, and the image's identity for provenance.

Pure functions of the environment and the daemon's info: unit-tested without Docker.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner import credentials, sweep_env
from stages.lib.cli import PipelineError

# Variables a stage may see. Anything else in the runner's environment stays there.
PASS_EXACT = frozenset(
    {
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "TZ",
        "PIPELINE_GIT_COMMIT",
        "PIPELINE_GIT_DIRTY",
    }
)
STAGE_HOME = "/tmp/stage-home"  # the invoking uid may have no home in the image
SHM_SIZE = "2g"  # PyTorch shares tensors through /dev/shm; Docker's default 64 MB is too small
GPU_MODES = ("auto", "all", "none")
# Only these stages talk to MLflow; they alone get its settings, and secrets over stdin.
MLFLOW_STAGES = frozenset({"train", "evaluate", "register"})
MLFLOW_SETTINGS = frozenset({"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_EXPERIMENT_NAME"})
SECRETS = frozenset(credentials.STAGE_SECRETS)
# ingest reads a local copy of the official archive in place of the download (stages/ingest.py).
ARCHIVE_ENV = "CIFAR100_ARCHIVE"


def stage_secrets(stage: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The secrets `stage` uses, sent over its stdin: none unless it talks to MLflow."""
    if stage not in MLFLOW_STAGES:
        return {}
    return {k: v for k, v in environ.items() if k in SECRETS and v}


def stage_env(environ: Mapping[str, str], image_id: str, image_digest: str = "none", stage: str = "") -> dict[str, str]:
    """The allow-listed environment for a stage container (no secrets: those go over stdin)."""
    allowed = PASS_EXACT | (MLFLOW_SETTINGS if stage in MLFLOW_STAGES else frozenset())
    allowed = allowed | sweep_env.PASS | ({ARCHIVE_ENV} if stage == "ingest" else set())
    env = {k: v for k, v in environ.items() if k in allowed}
    env.update(
        {
            "PIPELINE_EXECUTOR": "local",  # inside, `python -m runner` runs the stage in-process
            # ...but it was this launcher that ran it: what tracking records as the executor.
            "PIPELINE_STAGE_EXECUTOR": "docker",
            "PIPELINE_IMAGE_ID": image_id,
            "PIPELINE_IMAGE_DIGEST": image_digest,
            "HOME": STAGE_HOME,
            "MPLCONFIGDIR": f"{STAGE_HOME}/matplotlib",
            "PYTHONUNBUFFERED": "1",
            "PIPELINE_TETHER": "1",  # read secrets from stdin, stop when it closes (runner/tether.py)
        }
    )
    return env


def has_gpu_runtime(daemon_info: Mapping[str, Any]) -> bool:
    """The daemon can hand out GPUs: an NVIDIA runtime, or CDI-discovered NVIDIA devices."""
    if "nvidia" in (daemon_info.get("Runtimes") or {}):
        return True
    devices = daemon_info.get("DiscoveredDevices") or []
    return any(str(d.get("ID", "")).startswith("nvidia.com/gpu") for d in devices)


def gpu_request(mode: str, daemon_info: Mapping[str, Any]) -> tuple[list, str | None]:
    """(device requests, notice) for PIPELINE_GPUS = auto | all | none | a device list like 0,1."""
    from docker.types import DeviceRequest

    has_gpu = has_gpu_runtime(daemon_info)
    if mode == "none":
        return [], None
    if mode == "auto" and not has_gpu:
        return [], "no GPU runtime in the Docker daemon (NVIDIA runtime or CDI): running on CPU"
    if not has_gpu:
        raise PipelineError(
            f"PIPELINE_GPUS={mode} but the Docker daemon has no NVIDIA runtime or CDI devices: "
            "install the NVIDIA Container Toolkit, or set PIPELINE_GPUS=none"
        )
    if mode in ("auto", "all"):
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])], None
    if not re.fullmatch(r"\d+(,\d+)*", mode):
        raise PipelineError(f"PIPELINE_GPUS must be auto, all, none or a list like 0,1; got {mode!r}")
    return [DeviceRequest(device_ids=mode.split(","), capabilities=[["gpu"]])], None


def container_spec(
    argv: list[str],
    workdir: Path,
    image: str,
    image_id: str,
    environ: Mapping[str, str],
    uid: int,
    gid: int,
    devices: list,
    image_digest: str = "none",
) -> dict[str, Any]:
    """Keyword arguments for docker's containers.create()."""
    stage = argv[0]
    mounts = {str(workdir): {"bind": str(workdir), "mode": "rw"}}
    for extra in filter(None, environ.get("PIPELINE_EXTRA_MOUNTS", "").split(os.pathsep)):
        mounts[extra] = {"bind": extra, "mode": "ro"}  # e.g. a local archive outside the project
    mounts.update(sweep_env.rw_mounts(environ))
    if stage == "ingest" and environ.get(ARCHIVE_ENV):  # read-only, at the same path, wherever it lies
        archive = str(Path(environ[ARCHIVE_ENV]).resolve())
        mounts.setdefault(archive, {"bind": archive, "mode": "ro"})
    return {
        "image": image,
        "command": ["python", "-m", "runner", *argv],
        "name": f"cifar100-{stage}-{uuid.uuid4().hex[:8]}",
        "labels": {
            "cifar100.stage": stage,
            "cifar100.workdir": str(workdir),
            "cifar100.runner": environ.get("PIPELINE_RUNNER_ID", ""),  # orphans are found by it
        },
        "working_dir": str(workdir),
        "volumes": mounts,
        "user": f"{uid}:{gid}",
        "environment": stage_env(environ, image_id, image_digest, stage),
        "stdin_open": True,  # attached once by the launcher: secrets in, then the tether
        "network_mode": "host",
        "shm_size": SHM_SIZE,
        "init": True,  # docker's tini as PID 1 passes SIGTERM on to the stage
        "device_requests": devices,
        "detach": True,
    }


def image_digest(attrs: Mapping[str, Any]) -> str:
    """The registry digest (repo@sha256:...) of a pulled or pushed image; "none" for one built
    here and never pushed, whose identity is its ID (the sha256 of its config)."""
    digests = attrs.get("RepoDigests") or []
    return digests[0] if digests else "none"


def git_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Commit and dirtiness as seen by the runner, for images that carry no git."""
    if "PIPELINE_GIT_COMMIT" in environ:
        return {}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if commit.returncode:
        return {}
    return {"PIPELINE_GIT_COMMIT": commit.stdout.strip(), "PIPELINE_GIT_DIRTY": str(bool(status.stdout.strip()))}
