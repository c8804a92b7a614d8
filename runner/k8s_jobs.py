"""The k8s executor's calls on Jobs and pods (runner/k8s.py runs a stage with them): create a
Job (a leftover of a dead runner removed first), delete it with its pod, watch the Job's pod.
Watches, never polling; each watch is bounded (timeoutSeconds, and a client read timeout for a
server that does not honour it), and a new one replays the current state, so none is missed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

JOB_LABEL = "batch.kubernetes.io/job-name"  # set on its pods by the Job controller
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"  # on each pod of an Indexed Job
GONE_WAIT_S = 60.0  # how long a leftover Job may take to go (Foreground: its pods first)


def watch(list_call, namespace: str, watch_s: float, **selectors: str) -> Iterator[dict[str, Any]]:
    """One bounded watch: the matching objects' events, as dicts; ends after about watch_s."""
    import urllib3
    from kubernetes import watch as k8s_watch

    stream = k8s_watch.Watch().stream(
        list_call,
        namespace,
        timeout_seconds=max(1, int(watch_s)),
        _request_timeout=(30, watch_s + 5),
        deserialize=False,
        **selectors,
    )
    try:
        yield from stream
    except urllib3.exceptions.ReadTimeoutError:
        return  # an idle watch the server did not end: the caller opens another


def pods(core, namespace: str, job: str, timeout_s: float, watch_s: float) -> Iterator[dict[str, Any]]:
    """The Job's pod each time it changes, for timeout_s in all (watches of watch_s each)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in watch(core.list_namespaced_pod, namespace, watch_s, label_selector=f"{JOB_LABEL}={job}"):
            pod = event.get("object") or {}
            # the label checked here too: a server may ignore the selector (kmock does)
            meta = pod.get("metadata") or {}
            # An Indexed Job (train.nodes > 1) has a pod per node: rank 0, on index 0, is the one followed.
            index = (meta.get("annotations") or {}).get(INDEX_ANNOTATION, "0")
            if event.get("type") != "DELETED" and (meta.get("labels") or {}).get(JOB_LABEL) == job and index == "0":
                yield pod


def create_service(core, service: Mapping[str, Any]) -> None:
    """The headless Service of a multi-node Job (its pods' DNS names); one left over is replaced."""
    from kubernetes.client.exceptions import ApiException

    meta = service["metadata"]
    try:
        core.create_namespaced_service(meta["namespace"], service, _preload_content=False)
    except ApiException as exc:
        if exc.status != 409:
            raise
        delete_service(core, meta["name"], meta["namespace"])
        core.create_namespaced_service(meta["namespace"], service, _preload_content=False)


def delete_service(core, name: str, namespace: str) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        core.delete_namespaced_service(name, namespace, _preload_content=False)
    except ApiException as exc:
        if exc.status != 404:
            raise


def create(batch, spec: Mapping[str, Any], say) -> None:
    """Create the Job. One of the same name (project and stage: runner/k8s_spec.job_name) left by
    a dead runner answers 409: it is deleted with its pod, waited out, and the Job created again."""
    from kubernetes.client.exceptions import ApiException

    meta = spec["metadata"]
    try:
        batch.create_namespaced_job(meta["namespace"], spec, _preload_content=False)
        return
    except ApiException as exc:
        if exc.status != 409:
            raise
    say(f"removing Job {meta['namespace']}/{meta['name']} left over by an earlier run")
    delete(batch, meta["name"], meta["namespace"], wait_s=GONE_WAIT_S)
    batch.create_namespaced_job(meta["namespace"], spec, _preload_content=False)


def delete(batch, name: str, namespace: str, wait_s: float = 0) -> None:
    """Delete the Job and its pod (propagation Foreground: the pod goes first); with wait_s, wait
    until the API no longer has the Job (PipelineError past wait_s)."""
    from kubernetes.client.exceptions import ApiException

    try:
        batch.delete_namespaced_job(name, namespace, propagation_policy="Foreground", _preload_content=False)
    except ApiException as exc:
        if exc.status != 404:
            raise
        return
    if wait_s:
        _gone(batch, name, namespace, wait_s)


def _exists(batch, name: str, namespace: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        batch.read_namespaced_job(name, namespace, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _gone(batch, name: str, namespace: str, wait_s: float) -> None:
    """Wait for the Job's DELETED event. Read first, then watch in short turns: a DELETED that came
    between the read and the watch is not replayed, so each turn starts with a read."""
    from stages.lib.cli import PipelineError

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not _exists(batch, name, namespace):
            return
        for event in watch(batch.list_namespaced_job, namespace, 5, field_selector=f"metadata.name={name}"):
            if event.get("type") == "DELETED" and event["object"]["metadata"]["name"] == name:
                return
    raise PipelineError(
        f"Job {namespace}/{name} left by an earlier run was not gone {wait_s:.0f} s after its delete: "
        f"see `kubectl -n {namespace} describe job {name}` (a finalizer may hold it)"
    )
