"""What a stage pod's status says (pure functions of the pod as the API returns it, a dict):
started, ended with which exit code, or stuck for a reason that one line can name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.k8s_spec import CONTAINER
from runner.outcome import resume_hint, verdict

PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
ENDED_PHASES = frozenset({"Succeeded", "Failed"})
UNSCHEDULABLE_FIX = "check K8S_RESOURCES, K8S_GPUS and K8S_GPU_NODE_SELECTOR against the nodes (kubectl describe nodes)"


def _state(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return cs.get("state") or {}
    return {}


def started(pod: Mapping[str, Any]) -> bool:
    """The stage's container runs or ran: its log can be followed."""
    state = _state(pod)
    return "running" in state or "terminated" in state


def ended(pod: Mapping[str, Any]) -> bool:
    return "terminated" in _state(pod) or (pod.get("status") or {}).get("phase") in ENDED_PHASES


def stuck(pod: Mapping[str, Any], image: str) -> str | None:
    """Why the pod will not start (unschedulable, image not pullable), or None."""
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            why = cond.get("message") or "no node fits"
            return f"cannot be scheduled ({why}): {UNSCHEDULABLE_FIX}"
    waiting = _state(pod).get("waiting") or {}
    if waiting.get("reason") in PULL_FAILURES:
        why = f"{waiting['reason']}: {waiting.get('message') or 'no detail'}"
        return f"cannot pull image {image} ({why}): push it where the cluster pulls from, or fix K8S_IMAGE"
    return None


def exit_code(pod: Mapping[str, Any]) -> int:
    """The container's exit code; 137 (killed) for a pod that ended with none (evicted before it ran)."""
    terminated = _state(pod).get("terminated") or {}
    return int(terminated["exitCode"]) if "exitCode" in terminated else 137


def outcome(stage: str, pod: Mapping[str, Any]) -> str | None:
    """The one line for a stage that was evicted, killed (OOM) or interrupted; None for an ordinary exit."""
    status = pod.get("status") or {}
    if status.get("reason") == "Evicted":
        node, why = pod.get("spec", {}).get("nodeName", "?"), status.get("message") or "no detail"
        return f"stage {stage} was evicted from node {node} ({why}); {resume_hint(stage)}"
    terminated = _state(pod).get("terminated") or {}
    return verdict(stage, exit_code(pod), terminated.get("reason") == "OOMKilled")
