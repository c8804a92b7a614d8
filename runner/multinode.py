"""The train stage across several machines (params.yaml `train.nodes` > 1, Kubernetes only).

The train stage becomes an Indexed Job of `nodes` pods behind a headless Service of the same
name. Every pod runs torchrun with the c10d rendezvous hosted on pod 0
(`<job>-0.<service>:29500`, the stable hostname an Indexed Job gives pod 0 under its
subdomain); each pod starts one worker per GPU it holds (`--nproc-per-node gpu`).

Which pod holds rank 0 matters: only rank 0 writes the stage's outputs (stages/train.py).
c10d ignores `--node-rank` and numbers the nodes in the sorted order of their addresses
(torch.distributed.elastic.rendezvous.dynamic_rendezvous), so every pod passes
`--local-addr <job>-$(JOB_COMPLETION_INDEX).<service>`: `<job>-0.` sorts before every other
index (no other index starts with 0), so pod 0 is node 0 and its first worker rank 0. The
same address is the one the other nodes reach rank 0 at (MASTER_ADDR), through the Service.
Kubernetes expands `$(JOB_COMPLETION_INDEX)` in a container's command: the Job controller
declares that variable in every container of an Indexed Job.

Pure: builds argv lists and manifests (plain dicts); runner/k8s_spec.py submits them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stages.lib import params

PORT = 29500  # the c10d rendezvous store, on pod 0
JOIN_TIMEOUT_S = 1800  # pods wait this long for the others to be scheduled (GPUs may be scarce)
MULTINODE_EXECUTORS = ("k8s",)
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set by the Job controller on its pods (1.27+)


def torchrun_argv(
    nodes: int,
    procs_per_node: int | str,
    rdzv_endpoint: str,
    run_id: str,
    argv: Sequence[str],
    *,
    local_addr: str | None = None,
    python: str = "python",
) -> list[str]:
    """One node's torchrun: `nodes` agents meet at `rdzv_endpoint` (c10d), then each starts
    `procs_per_node` workers (an int, or "gpu": one per visible GPU) of `python -m stages argv`."""
    if nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {nodes}")
    addr = ["--local-addr", local_addr] if local_addr else []
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(nodes),
        "--nproc-per-node",
        str(procs_per_node),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        rdzv_endpoint,
        "--rdzv-id",
        run_id,
        "--rdzv-conf",
        f"join_timeout={JOIN_TIMEOUT_S}",
        *addr,
        "-m",
        "stages",
        *argv,
    ]


def service_name(job_name: str) -> str:
    """The headless Service, and the pods' subdomain, share the Job's name."""
    return job_name


def rdzv_endpoint(job_name: str) -> str:
    """Pod 0's stable DNS name under the Service, with the rendezvous port."""
    return f"{job_name}-0.{service_name(job_name)}:{PORT}"


def pod_local_addr(job_name: str) -> str:
    """This pod's own stable name; Kubernetes fills in the index when it starts the container."""
    return f"{job_name}-$(JOB_COMPLETION_INDEX).{service_name(job_name)}"


def pod_command(job_name: str, nodes: int, procs_per_node: int | str, argv: Sequence[str]) -> list[str]:
    """The container command of every pod of the Job (`argv` = the stage's: `train --params ...`)."""
    return torchrun_argv(
        nodes, procs_per_node, rdzv_endpoint(job_name), job_name, argv, local_addr=pod_local_addr(job_name)
    )


def headless_service(job_name: str, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """A v1 Service with no cluster IP: DNS records `<job>-<i>.<service>` for the Job's pods.

    publishNotReadyAddresses: the records exist as soon as a pod has an address, since the
    rendezvous happens before anything could count as ready."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service_name(job_name), "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_NAME_LABEL: job_name},
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": PORT, "targetPort": PORT, "protocol": "TCP"}],
        },
    }


def indexed_job_patch(job_name: str, nodes: int) -> dict[str, Any]:
    """What a v1 Job spec needs to run as `nodes` pods that find each other.

    backoffLimit 0: a pod that fails ends the Job (its peers' torchrun exits too); DVC reruns
    the stage, which resumes from rank 0's last epoch checkpoint."""
    return {
        "spec": {
            "completionMode": "Indexed",
            "completions": nodes,
            "parallelism": nodes,
            "backoffLimit": 0,
            "template": {"spec": {"subdomain": service_name(job_name)}},
        }
    }


def merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `patch` laid over it, mappings merged key by key (neither is changed)."""
    out = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def multinode_job(job: Mapping[str, Any], nodes: int, procs_per_node: int | str, argv: Sequence[str]) -> dict[str, Any]:
    """A v1 Job (one pod running the stage) turned into the `nodes`-pod Indexed Job: the patch
    merged, and the first container's command replaced by the pods' torchrun (args cleared)."""
    name = job["metadata"]["name"]
    out = merge(job, indexed_job_patch(name, nodes))
    container = out["spec"]["template"]["spec"]["containers"][0]
    container["command"] = pod_command(name, nodes, procs_per_node, argv)
    container.pop("args", None)
    return out


def params_path(argv: Sequence[str]) -> str | None:
    """The `--params` value in a stage's argv (`--params X` or `--params=X`), if any."""
    for i, arg in enumerate(argv):
        if arg == "--params" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--params="):
            return arg.split("=", 1)[1]
    return None


def nodes_for(argv: Sequence[str]) -> int:
    """`train.nodes` from the params file a train stage argv names; 1 for any other stage, and
    where the file or key is missing or bad (the stage itself then says what is wrong)."""
    path = params_path(argv)
    if not argv or argv[0] != "train" or path is None or not Path(path).is_file():
        return 1
    try:
        nodes = (params.read_yaml(path) or {}).get("train", {}).get("nodes", 1)
    except (params.ParamsError, AttributeError):
        return 1
    return nodes if isinstance(nodes, int) and not isinstance(nodes, bool) else 1


def executor_problem(executor: str, argv: Sequence[str]) -> str | None:
    """One line when the stage asks for more nodes than `executor` can give; None when fine."""
    nodes = nodes_for(argv)
    if nodes > 1 and executor not in MULTINODE_EXECUTORS:
        return (
            f"{params_path(argv)}: train.nodes is {nodes}; more than one node needs "
            f"PIPELINE_EXECUTOR={MULTINODE_EXECUTORS[0]}"
        )
    return None
