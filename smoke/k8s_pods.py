"""The test kubelet's pods for `make k8s-smoke` (smoke/k8s.py): each Job's pod really runs, as a
local subprocess in the sandbox (the PVC is the sandbox, mounted at its own absolute path, so the
pod's workingDir is the sandbox itself).

What is taken from the Job: the container's `command`, `workingDir` and `env` (plain values, and
secretKeyRef ones resolved from a dict standing in for the Secret; a key missing there is left
unset, as `optional: true` does). What is not emulated: the image (the pod runs this venv's
Python: PATH is the image's only ENV the spec relies on), resources, the securityContext's uid,
volumes other than the workspace (/dev/shm is the host's), and the timing: the command runs to its
end before the pod is created, and its log is served after (kmock_cluster.Kubelet's Script).
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


def container(job: Mapping[str, Any]) -> Mapping[str, Any]:
    return job["spec"]["template"]["spec"]["containers"][0]


def pod_env(ct: Mapping[str, Any], secret: Mapping[str, str]) -> dict[str, str]:
    """The container's env as the kubelet would set it: values, and secretKeyRef from `secret`."""
    env = {"PATH": IMAGE_PATH}
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
    every Job it saw (`jobs`) for the checks."""

    def __init__(self, secret: Mapping[str, str]):
        self.secret = dict(secret)
        self.jobs: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, job: dict[str, Any]) -> Script:
        with self._lock:
            self.jobs.append(job)
        ct = container(job)
        env = pod_env(ct, self.secret)
        Path(env.get("HOME", "/tmp")).mkdir(parents=True, exist_ok=True)  # the image creates it
        done = subprocess.run(
            list(ct["command"]),
            cwd=ct["workingDir"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=STAGE_TIMEOUT_S,
            check=False,
        )
        return Script(log=(done.stdout or b"",), exit_code=done.returncode)
