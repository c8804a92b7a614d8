"""The Kubernetes executor's settings (PIPELINE_EXECUTOR=k8s): K8S_* in the environment or `.env`.

Typed over runner/envsettings.py, so a bad value is one line naming the variable and the fix.
Per-stage resources are one JSON mapping, stage -> {"requests": {...}, "limits": {...}}, over
the defaults below ("default" applies to every stage not named).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from runner.envsettings import EnvSettings

NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # an RFC 1123 label: namespace, PVC, Secret
QUANTITY = re.compile(r"\d+(\.\d+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?")
RESOURCE_KEYS = frozenset({"cpu", "memory", "ephemeral-storage"})
# Every stage gets these unless K8S_RESOURCES says otherwise (cpu in cores, memory in bytes).
DEFAULT_RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "default": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "8Gi"}},
    "train": {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"memory": "24Gi"}},
    "evaluate": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "12Gi"}},
}
Resources = dict[str, dict[str, dict[str, str]]]


class K8sSettings(EnvSettings):
    """Where and how stage Jobs run. Secrets are never settings: only the Secret's name."""

    model_config = SettingsConfigDict(env_prefix="K8S_", env_file=Path(".env"))

    api_url: str = ""  # e.g. https://10.0.0.1:6443; empty: in-cluster config, else ~/.kube/config
    context: str = ""  # kubeconfig context ('' = current)
    namespace: Annotated[str, Field(pattern=NAME.pattern)] = "default"
    image: str = ""  # the stage image, pushed where the cluster pulls from (required)
    pvc: Annotated[str, Field(pattern=NAME.pattern)] = (
        "workspace"  # ReadWriteMany (deploy/base/workspace.yaml), holds the project
    )
    mount_path: str = ""  # where the PVC is mounted on the runner ('' = the project, or a sweep's project)
    secret: Annotated[str, Field(pattern=NAME.pattern)] = (
        "cifar100-secrets"  # deploy/ docs; keys: runner/credentials.STAGE_SECRETS
    )
    gpus: Annotated[int, Field(ge=0)] = 1  # nvidia.com/gpu per GPU stage (train, evaluate); 0: CPU only
    gpu_node_selector: dict[str, str] = {}  # JSON, e.g. {"nvidia.com/gpu.present": "true"}
    resources: Resources = {}  # JSON over DEFAULT_RESOURCES, per stage name or "default"
    uid: Annotated[int, Field(ge=1)] = 1000  # non-root; owns the files on the PVC
    gid: Annotated[int, Field(ge=1)] = 1000
    lease_s: Annotated[int, Field(ge=10)] = 60  # leaseDurationSeconds of the project's Lease
    start_timeout_s: Annotated[float, Field(gt=0)] = 900.0  # no pod event for this long: give up
    watch_s: Annotated[float, Field(gt=0)] = 30.0  # each watch's timeoutSeconds; a new one replays the state
    ttl_s: Annotated[int, Field(ge=0)] = 3600  # ttlSecondsAfterFinished: what a dead runner leaves goes

    @field_validator("resources")
    @classmethod
    def _quantities(cls, value: Resources) -> Resources:
        for stage, spec in value.items():
            for kind, amounts in spec.items():
                if kind not in ("requests", "limits"):
                    raise ValueError(f"{stage}: {kind!r} must be requests or limits")
                for key, amount in amounts.items():
                    if key not in RESOURCE_KEYS or not QUANTITY.fullmatch(str(amount)):
                        raise ValueError(f"{stage}.{kind}.{key}={amount!r} is not a cpu/memory quantity like 2 or 4Gi")
        return value

    def stage_resources(self, stage: str) -> dict[str, dict[str, str]]:
        """requests and limits for one stage: the defaults, then K8S_RESOURCES' default, then its stage entry."""
        merged: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
        for table in (DEFAULT_RESOURCES, self.resources):
            for key in ("default", stage):
                for kind, amounts in table.get(key, {}).items():
                    merged[kind].update(amounts)
        return merged
