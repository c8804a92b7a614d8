"""The test kubelet's pods for `make k8s-smoke` (smoke/k8s.py): each Job's pod really runs, as a
local subprocess in the sandbox (PodRunner), or as a Docker container from the Job's image
(DockerPodRunner, `make k8s-smoke KUBELET=docker`). The PVC is the sandbox, mounted at its own
absolute path, so the pod's workingDir is the sandbox itself (or, in a sweep, its experiment's
workspace under it).

What is taken from the Job: the container's `command`, `workingDir` and `env` (plain values, and
secretKeyRef ones resolved from a dict standing in for the Secret; a key missing there is left
unset, as `optional: true` does). What is not emulated: for PodRunner the image (the pod runs
this venv's Python: PATH is the image's only ENV the spec relies on) and volumes other than the
workspace (/dev/shm is the host's); for both, resources, the securityContext's uid, and the
timing: the command runs to its end before the pod is created, and its log is served after
(kmock_cluster.Kubelet's Script).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from smoke.kmock_cluster import Script

# What the stage image sets in its own ENV (containers/): the venv's python first on PATH.
IMAGE_PATH = f"{Path(sys.executable).parent}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin"
STAGE_TIMEOUT_S = 1800  # one stage of the smoke pipeline takes seconds to minutes
LABEL = "cifar100.kubelet"  # on DockerPodRunner's containers: the pid of the smoke that runs them


def container(job: Mapping[str, Any]) -> Mapping[str, Any]:
    return job["spec"]["template"]["spec"]["containers"][0]


def pod_env(ct: Mapping[str, Any], secret: Mapping[str, str], path: str | None = IMAGE_PATH) -> dict[str, str]:
    """The container's env as the kubelet would set it: values, and secretKeyRef from `secret`;
    PATH as the image sets it (None: left to the image, as in a container)."""
    env = {"PATH": path} if path else {}
    for entry in ct.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            raise ValueError(f"env {entry['name']}: only value and secretKeyRef are emulated, got {entry}")
        if ref["key"] in secret:
            env[entry["name"]] = secret[ref["key"]]
        elif not ref.get("optional"):
            raise ValueError(f"env {entry['name']}: key {ref['key']} is not in the Secret and not optional")
    return env


class PodRunner:
    """`script(job)` for kmock_cluster.Kubelet: runs the Job's pod as a subprocess and keeps
    every Job it saw (`jobs`) for the checks. `stop()` kills the pods still running (a run that
    failed or was interrupted leaves none behind)."""

    def __init__(self, secret: Mapping[str, str]):
        self.secret = dict(secret)
        self.jobs: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self._stopped = False

    def _seen(self, job: dict[str, Any]) -> Mapping[str, Any]:
        with self._lock:
            if self._stopped:
                raise RuntimeError("the test kubelet is stopped")
            self.jobs.append(job)
        return container(job)

    def __call__(self, job: dict[str, Any]) -> Script:
        ct = self._seen(job)
        env = pod_env(ct, self.secret)
        Path(env.get("HOME", "/tmp")).mkdir(parents=True, exist_ok=True)  # the image creates it
        proc = subprocess.Popen(
            list(ct["command"]), cwd=ct["workingDir"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        with self._lock:
            self._running.add(proc)
        try:
            out, _ = proc.communicate(timeout=STAGE_TIMEOUT_S)
        finally:
            proc.kill()  # a no-op once it ended; past the timeout it must not outlive the pod
            proc.wait()
            with self._lock:
                self._running.discard(proc)
        return Script(log=(out or b"",), exit_code=proc.returncode)

    def stop(self) -> None:
        with self._lock:
            self._stopped, running = True, list(self._running)
        for proc in running:
            proc.kill()


def workspace(ct: Mapping[str, Any]) -> str:
    """The workspace PVC's mount path: on this host the same folder (the sandbox or its project)."""
    return next(m["mountPath"] for m in ct["volumeMounts"] if m["name"] == "workspace")


class DockerPodRunner(PodRunner):
    """As PodRunner, but each pod is a container from the Job's own image (never pulled: it is the
    stage image `make build` made), with the Job's command, workingDir and env, the workspace PVC
    as the host folder at its mountPath, /dev/shm sized as the spec's emptyDir, the host network.
    Not emulated: the securityContext's uid (the container runs as this process's uid:gid, who
    owns the sandbox) and resources."""

    def __call__(self, job: dict[str, Any]) -> Script:
        import docker

        ct, client = self._seen(job), docker.from_env()
        mount = workspace(ct)
        box = client.containers.run(
            ct["image"],
            list(ct["command"]),
            working_dir=ct["workingDir"],
            environment=pod_env(ct, self.secret, path=None),
            volumes={mount: {"bind": mount, "mode": "rw"}},
            user=f"{os.getuid()}:{os.getgid()}",
            network_mode="host",
            shm_size="2g",
            labels={LABEL: str(os.getpid()), "cifar100.job": job["metadata"]["name"]},
            init=True,
            detach=True,
        )
        try:
            code = int(box.wait(timeout=STAGE_TIMEOUT_S)["StatusCode"])
            return Script(log=(box.logs(),), exit_code=code)
        finally:
            box.remove(force=True)

    def stop(self) -> None:
        import docker

        with self._lock:
            self._stopped = True
        client = docker.from_env()
        for box in client.containers.list(all=True, filters={"label": f"{LABEL}={os.getpid()}"}):
            box.remove(force=True)
