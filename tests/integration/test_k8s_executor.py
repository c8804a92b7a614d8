"""The k8s executor (runner/k8s.py) against kmock, an emulated Kubernetes API speaking the real
protocol to the unmodified `kubernetes` client, with a scripted kubelet playing the Job controller
(smoke/kmock_cluster.py). Every run must end with its Job deleted (propagation Foreground)."""

from __future__ import annotations

import datetime as dt
import io
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runner import k8s, k8s_lease
from runner.k8s_settings import K8sSettings
from runner.k8s_spec import RUN_LABEL, job_spec
from smoke.kmock_cluster import Cluster, Kubelet, Script

NS = "default"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the project dir names the Job and the Lease: one per test
    with Cluster() as running:
        yield running


def start_kubelet(cluster: Cluster, script=lambda job: Script()) -> Kubelet:
    kubelet = Kubelet(cluster, NS, script)
    kubelet.start()
    return kubelet


def environ(cluster: Cluster, run: str = "run-1", **extra: str) -> dict[str, str]:
    return {"K8S_API_URL": cluster.url, "K8S_IMAGE": "stage:1", "K8S_WATCH_S": "5", "PIPELINE_RUN": run, **extra}


def run_stage(cluster: Cluster, stage: str = "validate", run: str = "run-1") -> tuple[int, bytes]:
    env = environ(cluster, run)
    out = io.BytesIO()
    return k8s.run([stage], env, K8sSettings.load(env), out), out.getvalue()


def deletes(cluster: Cluster) -> list[str]:
    """The runner's Job deletes, as `propagationPolicy` values."""
    return [
        r.params.get("propagationPolicy", "")
        for r in cluster.requests()
        if str(r.method.value).upper() == "DELETE" and "/jobs/" in r.url.path
    ]


def lines(err: str, word: str) -> list[str]:
    return [line for line in err.splitlines() if word in line]


@pytest.mark.parametrize("code", [0, 3])
def test_stage_log_streamed_exit_code_kept_job_deleted(cluster, capsys, code):
    kubelet = start_kubelet(cluster, lambda job: Script(log=(b"epoch 1\n", b"done\n"), exit_code=code))
    rc, out = run_stage(cluster)
    assert (rc, out) == (code, b"epoch 1\ndone\n")
    assert deletes(cluster) == ["Foreground"]
    assert cluster.objects("jobs") == [] and kubelet.errors == []
    assert len(cluster.requests()) <= 20  # the bench's goal per stage
    assert "stage validate in Job" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("script", "word"),
    [
        (Script(fail="OOMKilled", exit_code=137), "out-of-memory"),
        (Script(fail="Evicted", exit_code=137), "evicted"),
        (Script(fail="ErrImagePull"), "ErrImagePull"),
        (Script(fail="Unschedulable"), "cannot be scheduled"),
    ],
)
def test_pod_failure_is_one_line_naming_stage_and_reason(cluster, capsys, script, word):
    start_kubelet(cluster, lambda job: script)
    rc, _ = run_stage(cluster, "train")
    err = capsys.readouterr().err
    assert rc != 0
    assert len(found := lines(err, word)) == 1 and "stage train" in found[0], err
    assert deletes(cluster) == ["Foreground"] and cluster.objects("jobs") == []


def test_leftover_job_is_removed_and_created_again(cluster, capsys, tmp_path):
    # the leftover of a dead run hangs; the new run's pod ends at once
    kubelet = start_kubelet(cluster, lambda job: Script(hang=job["metadata"]["labels"][RUN_LABEL] == "dead"))
    env = environ(cluster, "dead")
    leftover = job_spec(["validate"], tmp_path, K8sSettings.load(env), env, "dead")
    from kubernetes import client

    client.BatchV1Api(k8s.api_client(K8sSettings.load(env))).create_namespaced_job(NS, leftover)
    rc, out = run_stage(cluster)
    assert (rc, out) == (0, b"stage output\n")
    assert len(lines(capsys.readouterr().err, "left over")) == 1
    assert cluster.objects("jobs") == [] and kubelet.errors == []


def test_second_run_is_refused_naming_the_holder(cluster, capsys):
    start_kubelet(cluster)
    assert run_stage(cluster, run="run-1")[0] == 0  # the Lease is kept for the run's next stage
    assert k8s.main(["validate"], environ(cluster, "run-2")) == 1
    refused = lines(capsys.readouterr().err, "error:")
    assert len(refused) == 1 and "held by run-1" in refused[0]
    assert run_stage(cluster, run="run-1")[0] == 0  # the holder's next stage takes it back


def test_expired_lease_is_taken_over(cluster, capsys, tmp_path):
    start_kubelet(cluster)
    from kubernetes import client

    coord = client.CoordinationV1Api(k8s.api_client(K8sSettings.load(environ(cluster))))
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    coord.create_namespaced_lease(NS, k8s_lease._body(k8s_lease.lease_name(tmp_path), "dead", 60, old, tmp_path))
    assert run_stage(cluster)[0] == 0
    assert len(lines(capsys.readouterr().err, "taking over Lease")) == 1
    (lease,) = cluster.objects("leases")
    assert lease["spec"]["holderIdentity"] == "run-1"


def test_unreachable_api_is_one_line_naming_the_server(capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert k8s.main(["validate"], {"K8S_API_URL": url, "K8S_IMAGE": "stage:1"}) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and url in err[0] and "not reachable" in err[0]


def test_sigterm_deletes_the_job(cluster, tmp_path):
    start_kubelet(cluster, lambda job: Script(log=(b"started\n",), hang=True))
    env = {**os.environ, **environ(cluster), "PIPELINE_EXECUTOR": "k8s", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "validate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    watchdog = threading.Timer(90, proc.kill)  # a runner that never starts the pod fails the readline
    watchdog.start()
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"started\n"  # the pod runs
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        watchdog.cancel()
        proc.kill()
    assert proc.returncode == 130, err
    assert b"stage validate was interrupted" in err
    assert deletes(cluster) == ["Foreground"] and cluster.objects("jobs") == []


def test_train_on_two_nodes_is_an_indexed_job_behind_a_headless_service(cluster, tmp_path):
    """train.nodes 2: one Indexed Job of 2 pods under torchrun, a headless Service for their names;
    both are deleted afterwards. (The harness kubelet runs one pod: rank 0's, which is followed.)"""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text().replace("  nodes: 1 ", "  nodes: 2 "))
    seen = []
    kubelet = start_kubelet(cluster, lambda job: seen.append(job) or Script(log=(b"rank 0\n",)))
    env = environ(cluster)
    out = io.BytesIO()
    rc = k8s.run(["train", "--params", "params.yaml"], env, K8sSettings.load(env), out)
    assert (rc, out.getvalue(), kubelet.errors) == (0, b"rank 0\n", [])
    (job,) = seen
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    command = spec["template"]["spec"]["containers"][0]["command"]
    assert "torch.distributed.run" in " ".join(command) and "--nnodes" in " ".join(command)
    posted = [r.url.path for r in cluster.requests() if str(r.method.value).upper() == "POST"]
    assert any(p.endswith("/services") for p in posted)
    assert cluster.objects("services") == [] and cluster.objects("jobs") == []
