"""`make k8s-smoke`: the smoke pipeline run by `dvc repro` with PIPELINE_EXECUTOR=k8s against an
emulated Kubernetes API (kmock, smoke/kmock_cluster.py) whose test kubelet really runs each Job's
pod, as a subprocess in the sandbox or (--image, `make k8s-smoke KUBELET=docker`) as a container
from the stage image (smoke/k8s_pods.py); then the same pipeline with the local
executor in a second sandbox, and the two dvc.lock files compared stage by stage.

Checks every Job spec the executor created and every rendered deploy/ manifest (smoke/k8s_checks.py),
and that none of the dummy secret values set for the run appears in any spec. Prints one JSON line:
stages, jobs_created, pods_left, lock_equal_to_local, manifests_valid, secret_values_in_specs.
Both sandboxes go under .smoke/ and are removed unless --keep.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from smoke import k8s_checks
from smoke.k8s_pods import STAGE_TIMEOUT_S, DockerPodRunner, PodRunner
from smoke.kmock_cluster import Cluster, Kubelet
from smoke.sandbox import SMOKE_OVERRIDES, make_sandbox, merge, scratch

NAMESPACE = "default"
IMAGE = "registry.example/cifar100-stage:smoke"  # never pulled: the test kubelet runs this venv
# Stand-ins for the runner's credentials: set in its environment (and in the emulated Secret);
# none may reach a Job spec. Only the secret ones: endpoints and regions would change where the
# stages look.
SECRET_KEYS = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
DUMMY_SECRETS = {key: f"smoke-dummy-{key.lower().replace('_', '-')}-7f3a" for key in SECRET_KEYS}


def repro(sandbox: Path, extra: dict[str, str]) -> None:
    """`dvc repro` in the sandbox with its own MLflow store, the dummy secrets and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "K8S_", "AWS_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({**DUMMY_SECRETS, **extra})
    subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=sandbox, env=env, check=True)


def job_posts(cluster: Cluster) -> int:
    return sum(str(r.method.value).upper() == "POST" and r.url.path.endswith("/jobs") for r in cluster.requests())


def pods_left(cluster: Cluster, wait_s: float = 15.0) -> int:
    """The pods still in the API after the run; the kubelet deletes a deleted Job's pods, give it wait_s."""
    deadline = time.monotonic() + wait_s
    while cluster.objects("pods") and time.monotonic() < deadline:
        time.sleep(0.2)
    return len(cluster.objects("pods"))


@contextlib.contextmanager
def emulated(secret: dict[str, str], image: str = "") -> Iterator[tuple[Cluster, Kubelet, PodRunner, dict[str, str]]]:
    """An emulated cluster whose test kubelet runs every Job's pod (a subprocess, or with `image` a
    container from it); the K8S_* settings that point the executor at it. The cluster is closed
    and its kubelet stopped at the end."""
    pods, cluster = (DockerPodRunner(secret) if image else PodRunner(secret)), Cluster()
    kubelet = Kubelet(cluster, NAMESPACE, pods)
    try:
        kubelet.start()
        settings = {"K8S_API_URL": cluster.url, "K8S_IMAGE": image or IMAGE, "K8S_NAMESPACE": NAMESPACE}
        # The test kubelet creates a pod only once its command has ended (k8s_pods.py), so the
        # executor's wait for a pod to start spans the whole stage: give it the stage's timeout.
        timing = {"K8S_WATCH_S": "5", "K8S_START_TIMEOUT_S": str(STAGE_TIMEOUT_S)}
        yield cluster, kubelet, pods, {**settings, **timing, "K8S_GPUS": "0"}
    finally:
        pods.stop()
        cluster.close()
        if kubelet.ident is not None:
            kubelet.join(timeout=15)  # its watch ends with the cluster
    if kubelet.is_alive():
        raise RuntimeError("the test kubelet did not stop with the cluster")


def run_k8s(sandbox: Path, image: str = "") -> dict[str, Any]:
    """The pipeline on the k8s executor against kmock; what the cluster saw."""
    with emulated(DUMMY_SECRETS, image) as (cluster, kubelet, pods, settings):
        repro(sandbox, {"PIPELINE_EXECUTOR": "k8s", **settings})
        seen = {"jobs_created": job_posts(cluster), "pods_left": pods_left(cluster), "kubelet": kubelet.errors}
    return {**seen, "jobs": pods.jobs}


def smoke(k8s_box: Path, local_box: Path, overrides: dict, image: str = "") -> tuple[dict[str, Any], list[str]]:
    """The JSON result and one line per problem found."""
    started = time.monotonic()
    seen = run_k8s(make_sandbox(k8s_box, overrides), image)
    k8s_s = time.monotonic() - started
    repro(make_sandbox(local_box, overrides), {"PIPELINE_EXECUTOR": "local"})
    print(f"k8s-smoke: k8s run {k8s_s:.0f} s, local run {time.monotonic() - started - k8s_s:.0f} s", file=sys.stderr)
    secrets = list(DUMMY_SECRETS.values())
    jobs_valid, problems = k8s_checks.check_jobs(seen["jobs"], secrets)
    rendered_valid, rendered_problems = k8s_checks.check_rendered(k8s_box / ".k8s-render", secrets)
    differences = k8s_checks.lock_differences(k8s_box / "dvc.lock", local_box / "dvc.lock")
    problems += rendered_problems + [f"dvc.lock differs: {d}" for d in differences] + seen["kubelet"]
    result = {
        "stages": len(k8s_checks.lock_stages(k8s_box / "dvc.lock")),
        "jobs_created": seen["jobs_created"],
        "pods_left": seen["pods_left"],
        "lock_equal_to_local": not differences,
        "manifests_valid": jobs_valid + rendered_valid,
        "secret_values_in_specs": k8s_checks.secret_hits(seen["jobs"], secrets),
    }
    return result, problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep both sandboxes for inspection")
    ap.add_argument("--epochs", type=int, default=SMOKE_OVERRIDES["recipes"]["fast"]["epochs"])
    ap.add_argument("--image", default="", help="the test kubelet runs each pod as a container from this stage image")
    args = ap.parse_args()
    overrides = merge(SMOKE_OVERRIDES, {"recipes": {"fast": {"epochs": args.epochs}}})
    with scratch("k8s-", keep=args.keep) as k8s_box, scratch("local-", keep=args.keep) as local_box:
        result, problems = smoke(k8s_box, local_box, overrides, args.image)
    for line in problems:
        print(f"k8s-smoke: {line}", file=sys.stderr)
    print(json.dumps(result))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
