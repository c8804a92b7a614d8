"""An emulated Kubernetes API (kmock, in a thread) and a scripted kubelet, for the k8s executor's
tests and bench/k8s.py. kmock runs no controllers: the `Kubelet` plays the Job controller and
the kubelet, creating each Job's pod and setting its statuses and log as a `Script` says.

`Cluster().url` is what K8S_API_URL points at; `cluster.requests(agent)` counts the requests
the runner made (the kubelet's carry their own User-Agent). Stop with `close()` (or `with`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import threading
import time
from typing import Any

KUBELET_AGENT = "emulated-kubelet"


def _fix_watch_flag() -> None:
    """kmock 0.8 takes only `watch=true` for a watch; the official client sends `watch=True`
    (which the real API server accepts): read the flag as the server does."""
    from kmock._internal import parsing

    original = parsing.guess_k8s
    if getattr(original, "fixed", False):
        return

    def guess(k8s, method, query):
        return original(k8s, method, {**query, **({"watch": "true"} if query.get("watch") == "True" else {})})

    guess.fixed = True  # type: ignore[attr-defined]
    parsing.guess_k8s = guess


class Cluster:
    """kmock's KubernetesEmulator on 127.0.0.1, served from its own event loop thread."""

    def __init__(self):
        import kmock

        _fix_watch_flag()
        self._ready, self._error = threading.Event(), None
        self.emulator: Any = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(kmock)), name="kmock", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self.emulator is None:
            raise RuntimeError("kmock did not start in 30 s")

    async def _serve(self, kmock) -> None:
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            for resource in ("batch/v1/jobs", "v1/pods", "coordination.k8s.io/v1/leases"):
                emulator.resources[resource] = {}
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self.emulator, self.url = emulator, str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()
            # Open watches and followed logs never end by themselves (kmock ignores timeoutSeconds), and
            # the server's shutdown waits for its handlers: end them first, so close() is prompt.
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

    def requests(self, but_agent: str = KUBELET_AGENT) -> list[Any]:
        """The requests served so far, but those of the emulated kubelet."""
        return [r for r in list(self.emulator) if r.headers.get("User-Agent") != but_agent]

    def objects(self, plural: str) -> list[dict]:
        return [
            dict(obj.raw)
            for (res, _, _), obj in list(self.emulator.objects.items())
            if res.plural == plural and not obj.deleted
        ]

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclasses.dataclass
class Script:
    """What the kubelet does with a Job's pod: its log lines, then how it ends."""

    log: tuple[bytes, ...] = (b"stage output\n",)
    exit_code: int = 0
    fail: str = ""  # "" | OOMKilled | Evicted | ErrImagePull | ImagePullBackOff | Unschedulable
    hang: bool = False  # keep running (and the log open) until the Job is deleted
    run_s: float = 0.0  # the pod's own time: seconds from running to terminated


class Kubelet(threading.Thread):
    """Watches Jobs: for each new one creates its pod, serves its log and sets its end; deletes a
    deleted Job's pods (the garbage collector's part in a Foreground delete). What failed in the
    kubelet itself is kept in `errors` (tests assert it stays empty)."""

    def __init__(self, cluster: Cluster, namespace: str, script=lambda job: Script()):
        super().__init__(name="kubelet", daemon=True)
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = cluster.url
        api = client.ApiClient(cfg)
        api.user_agent = KUBELET_AGENT
        self.core, self.batch = client.CoreV1Api(api), client.BatchV1Api(api)
        self.cluster, self.namespace, self.script = cluster, namespace, script
        self.pods: dict[str, list[str]] = {}  # Job name -> its pods' names
        self.errors: list[str] = []

    def run(self) -> None:
        from kubernetes import watch

        w = watch.Watch()
        with contextlib.suppress(Exception):  # the cluster closed under the watch: the kubelet ends
            for event in w.stream(self.batch.list_namespaced_job, self.namespace, deserialize=False):
                if event["type"] == "ADDED":
                    threading.Thread(target=self._guarded, args=(self._run_job, event["object"]), daemon=True).start()
                elif event["type"] == "DELETED":  # before the next event: a Job created again finds its old pods gone
                    self._guarded(self._delete_pods, event["object"])

    def _guarded(self, target, job: dict) -> None:
        from kubernetes.client.exceptions import NotFoundException

        try:
            target(job)
        except NotFoundException:  # its pod deleted (a leftover Job removed) while it ran: as a kubelet sees it
            return
        except Exception as exc:  # kept for the test to assert on; the thread ends
            self.errors.append(f"{target.__name__} {job['metadata']['name']}: {exc!r}")

    def _delete_pods(self, job: dict) -> None:
        for pod_name in self.pods.pop(job["metadata"]["name"], []):
            self.core.delete_namespaced_pod(pod_name, self.namespace, _preload_content=False)

    def _run_job(self, job: dict) -> None:
        script, name = self.script(job), job["metadata"]["name"]
        template = job["spec"]["template"]
        pod_name = f"{name}-{next(_SUFFIX):05d}"  # the Job controller's random suffix, counted here
        self.pods.setdefault(name, []).append(pod_name)
        labels = {**template["metadata"]["labels"], "batch.kubernetes.io/job-name": name, "job-name": name}
        log = (*script.log, ...) if script.hang else script.log
        self.cluster.emulator[f"get /api/v1/namespaces/{self.namespace}/pods/{pod_name}/log"] << log
        # metadata.namespace in the body too: a real API server fills it in from the URL, kmock keeps the
        # body as sent and drops a namespaced watch's live events whose object has no metadata.namespace
        meta = {"name": pod_name, "namespace": self.namespace, "labels": labels}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}
        self.core.create_namespaced_pod(
            self.namespace, {**pod, "status": _status("Pending", script, {})}, _preload_content=False
        )
        if script.fail in ("ErrImagePull", "ImagePullBackOff", "Unschedulable"):
            waiting = {"waiting": {"reason": script.fail, "message": "emulated"}}
            return self._status(pod_name, _status("Pending", script, waiting))
        self._status(pod_name, _status("Running", script, {"running": {"startedAt": "2026-01-01T00:00:00Z"}}))
        if script.hang:
            return None
        time.sleep(script.run_s)
        reason = "OOMKilled" if script.fail == "OOMKilled" else ("Completed" if script.exit_code == 0 else "Error")
        terminated = {"terminated": {"exitCode": script.exit_code, "reason": reason}}
        return self._status(pod_name, _status("Succeeded" if script.exit_code == 0 else "Failed", script, terminated))

    def _status(self, pod_name: str, status: dict) -> None:
        self.core.patch_namespaced_pod_status(pod_name, self.namespace, {"status": status}, _preload_content=False)


_SUFFIX = itertools.count(1)


def _status(phase: str, script: Script, state: dict) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "containerStatuses": [
            {
                "name": "stage",
                "image": "x",
                "imageID": "",
                "ready": phase == "Running",
                "restartCount": 0,
                "state": state,
            }
        ],
    }
    if script.fail == "Unschedulable":
        status = {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                }
            ],
        }
    if script.fail == "Evicted" and phase == "Failed":
        status = {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}
    return status
