"""Run one stage as a Kubernetes Job (PIPELINE_EXECUTOR=k8s), through the same seam as Docker.

Called by `python -m runner NAME ARGS`: holds the project's Lease (runner/k8s_lease.py), creates
the Job runner/k8s_spec.py builds, watches its pod (by label, never polling), streams the pod's
log to this output as it is written, and returns the container's exit code. A pod that cannot
start (unschedulable, image not pullable), an eviction or the OOM killer ends in one line naming
the stage. The Job is deleted (propagation Foreground: its pod goes first) however the stage
ends, Ctrl-C and SIGTERM included. The calls on Jobs and pods are in runner/k8s_jobs.py; the
official `kubernetes` client is imported lazily, by the runner/k8s*.py modules only.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from runner import k8s_lease, k8s_pod, multinode
from runner.k8s_jobs import create, create_service, delete, delete_service, pods
from runner.k8s_settings import K8sSettings
from runner.k8s_spec import CONTAINER, job_spec, wants_gpu
from runner.outcome import verdict
from stages.lib.cli import PipelineError


def api_client(settings: K8sSettings):
    """K8S_API_URL (tests, a proxy), else in-cluster config, else the kubeconfig's context."""
    from kubernetes import client, config

    if settings.api_url:
        cfg = client.Configuration()
        cfg.host = settings.api_url.rstrip("/")
        return client.ApiClient(cfg)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config(context=settings.context or None)
        except (config.ConfigException, OSError) as exc:
            raise PipelineError(
                f"no Kubernetes configuration ({exc}): set K8S_API_URL, or KUBECONFIG / K8S_CONTEXT"
            ) from None
    return client.ApiClient()


def say(line: str) -> None:
    print(f"k8s: {line}", file=sys.stderr, flush=True)


def follow(core, stage: str, job: str, settings: K8sSettings, out: BinaryIO) -> int:
    """Wait for the pod to start (or say why it cannot), stream its log, return its exit code."""
    namespace, image, timeout_s = settings.namespace, settings.image, settings.start_timeout_s
    pod: dict[str, Any] = {}
    for pod in pods(core, namespace, job, timeout_s, settings.watch_s):
        if reason := k8s_pod.stuck(pod, image):
            say(f"stage {stage} {reason}")
            return 1
        if k8s_pod.started(pod) or k8s_pod.ended(pod):
            break
    else:
        raise PipelineError(
            f"no pod of Job {namespace}/{job} started in {timeout_s:.0f} s (K8S_START_TIMEOUT_S): "
            f"see `kubectl -n {namespace} describe job {job}`"
        )
    name = pod["metadata"]["name"]
    if k8s_pod.started(pod):
        log = core.read_namespaced_pod_log(name, namespace, container=CONTAINER, follow=True, _preload_content=False)
        try:
            for chunk in log.stream(1 << 14):
                out.write(chunk)
                out.flush()
        finally:
            log.release_conn()
    if not k8s_pod.ended(pod):
        pod = next((p for p in pods(core, namespace, job, timeout_s, settings.watch_s) if k8s_pod.ended(p)), pod)
    if line := k8s_pod.outcome(stage, pod):
        say(line)
    return k8s_pod.exit_code(pod) if k8s_pod.ended(pod) else 1


def _terminate(signum, frame):
    raise KeyboardInterrupt  # unwinds into run()'s finally, which deletes the Job


def _specs(argv: list[str], workdir: Path, settings: K8sSettings, environ: Mapping[str, str], holder: str):
    """(the Job, its headless Service or None): train with train.nodes > 1 is an Indexed Job of that
    many pods under torchrun's c10d rendezvous on pod 0 (runner/multinode.py)."""
    spec = job_spec(argv, workdir, settings, environ, holder)
    nodes = multinode.nodes_for(argv)
    if nodes <= 1:
        return spec, None
    procs: int | str = "gpu" if wants_gpu(argv[0], environ, settings) else 1
    meta = spec["metadata"]
    service = multinode.headless_service(meta["name"], meta["namespace"], meta.get("labels") or {})
    return multinode.multinode_job(spec, nodes, procs, argv), service


def run(argv: list[str], environ: Mapping[str, str], settings: K8sSettings, out: BinaryIO) -> int:
    """The stage as a Job, under the project's Lease; the Job is gone when this returns."""
    from kubernetes import client

    if not settings.image:
        raise PipelineError(
            "K8S_IMAGE is not set: push the stage image where the cluster pulls from and set K8S_IMAGE to it"
        )
    stage, workdir, holder = argv[0], Path.cwd(), k8s_lease.identity(environ)
    api = api_client(settings)
    core, batch, coord = client.CoreV1Api(api), client.BatchV1Api(api), client.CoordinationV1Api(api)
    spec, service = _specs(argv, workdir, settings, environ, holder)
    name, ns = spec["metadata"]["name"], settings.namespace
    with k8s_lease.held(coord, ns, workdir, holder, settings.lease_s):
        previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if service:
                create_service(core, service)
            create(batch, spec, say)
            say(f"stage {stage} in Job {ns}/{name}, image {settings.image}")
            return follow(core, stage, name, settings, out)
        except KeyboardInterrupt:
            say(verdict(stage, 130, False) or "")
            return 130
        finally:
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)  # one interrupt is enough: the delete must not be cut
            try:
                delete(batch, name, ns)
                if service:
                    delete_service(core, service["metadata"]["name"], ns)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)


def main(argv: list[str], environ: Mapping[str, str] = os.environ) -> int:
    """The executor's entry: one line for a bad setting, an unreachable API or a refused Lease."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    settings: K8sSettings | None = None
    # urllib3 retries a refused connection a few times and logs each retry: the one line below says it.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    try:
        settings = K8sSettings.load(environ)
        return run(argv, environ, settings, sys.stdout.buffer)
    except PipelineError as exc:
        say(f"error: {exc}")
    except urllib3.exceptions.HTTPError as exc:
        from kubernetes import client

        where = settings.api_url if settings and settings.api_url else client.Configuration.get_default_copy().host
        say(
            f"error: Kubernetes API not reachable at {where} ({type(exc).__name__}): start the cluster, "
            "or point K8S_API_URL or your kubeconfig's context at it (`kubectl cluster-info`)"
        )
    except ApiException as exc:
        body = json.loads(exc.body or "{}") if (exc.body or "").startswith("{") else {}
        say(
            f"error: the Kubernetes API refused stage {argv[0]}: {exc.status} {body.get('message') or exc.reason}; "
            "check K8S_NAMESPACE and the runner's RBAC (jobs, pods, pods/log, leases)"
        )
    return 1
