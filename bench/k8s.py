"""Claim: the Kubernetes executor costs at most 20 API requests and 1 s per stage.

Measured against kmock (an emulated Kubernetes API; smoke/kmock_cluster.py) with its scripted
kubelet playing the Job controller, so the figures are the executor's own, not a cluster's:
1. API requests per stage: the requests kmock served to the runner for one no-op stage (Lease,
   Job create, pod watches, log, delete), the kubelet's own excluded (its User-Agent).
2. Added time per stage: wall time of runner.k8s.run for a stage whose scripted pod runs
   POD_S seconds, minus POD_S; fastest and slowest of --repeats, in one process after a warm-up
   run. Each stage gets a fresh emulator: kmock checks every request against its whole request
   log once per reaction, so its own time grows with the requests it has served (0.07 s per
   request fresh, 0.4 s after five stages, at load 11-16), which is kmock's cost, not the executor's.
3. The client's import: `import kubernetes` in a fresh interpreter, which each stage's
   `python -m runner` pays once (reported apart: it is the machine's, not the protocol's).
A real cluster adds scheduling, image pull and container start, none of which is measured here.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import commit
from runner import k8s, k8s_lease
from runner.k8s_settings import K8sSettings
from smoke.kmock_cluster import Cluster, Kubelet, Script

ROOT = Path(__file__).resolve().parent.parent
POD_S = 0.5  # the scripted pod's own time, from running to terminated (s)
ENV = {"K8S_IMAGE": "stage:1", "PIPELINE_RUN": "bench"}


def one_stage(cluster: Cluster, run: int) -> tuple[float, int]:
    """(wall seconds, runner's API requests) for one no-op stage."""
    env = {**ENV, "K8S_API_URL": cluster.url}
    before = len(cluster.requests())
    start = time.perf_counter()
    code = k8s.run(["validate"], env, K8sSettings.load(env), io.BytesIO())
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"bench/k8s.py: stage {run} ended {code}, not 0")
    return wall, len(cluster.requests()) - before


def hold_lease(cluster: Cluster, workdir: Path) -> None:
    """The Lease as the run's earlier stage leaves it."""
    from kubernetes import client

    settings = K8sSettings.load({"K8S_API_URL": cluster.url})
    coord = client.CoordinationV1Api(k8s.api_client(settings))
    k8s_lease.acquire(coord, "default", workdir, k8s_lease.identity(ENV), settings.lease_s)


def import_s() -> float:
    """Seconds for `import kubernetes` in a fresh interpreter (less the interpreter's own start)."""

    def timed(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    return min(timed("import kubernetes.client, kubernetes.watch") - timed("pass") for _ in range(2))


def measure(repeats: int) -> dict:
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the project dir names the Job and the Lease
        for i in range(repeats + 1):  # the first warms up (imports, first connections)
            with Cluster() as cluster:
                Kubelet(cluster, "default", lambda job: Script(run_s=POD_S)).start()
                hold_lease(cluster, Path(tmp))
                runs.append(one_stage(cluster, i))
        os.chdir(ROOT)
    runs = runs[1:]
    walls, requests = [w for w, _ in runs], [r for _, r in runs]
    return {
        "bench": "k8s",
        "commit": commit(ROOT),
        "stages": repeats,
        "requests_per_stage": max(requests),
        "added_s_per_stage": round(min(walls) - POD_S, 3),
        "added_s_per_stage_max": round(max(walls) - POD_S, 3),
        "client_import_s": round(import_s(), 2),
        "goal": {"requests_per_stage": 20, "added_s_per_stage": 1.0},
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    print(json.dumps(measure(parser.parse_args().repeats)))


if __name__ == "__main__":
    main()
