"""The k8s executor's pure parts: the Job builder, its checks, the pod verdicts, the Lease's expiry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from runner import credentials, k8s_lease, k8s_pod, k8s_spec
from runner.k8s_check import VERSIONS, problems, semantic_problems
from runner.k8s_settings import K8sSettings
from runner.k8s_spec import GPU, job_name, job_spec
from stages import __main__ as stages_entry
from stages.lib.cli import PipelineError

WORKDIR = Path("/srv/projects/cifar100")
SECRETS = {name: f"secret-value-{i}" for i, name in enumerate(credentials.STAGE_SECRETS)}


def settings(**env: str) -> K8sSettings:
    return K8sSettings.load({"K8S_IMAGE": "registry.example/cifar100-stage:1", **env}, env_file=Path("/nonexistent"))


def build(stage: str, environ: dict | None = None, **env: str) -> dict:
    return job_spec([stage, "--flag"], WORKDIR, settings(**env), {**SECRETS, **(environ or {})}, "host-4242")


def container(spec: dict) -> dict:
    return spec["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("stage", sorted(stages_entry.STAGES))
def test_every_stage_job_passes_schemas_and_semantic_checks(stage):
    spec = build(stage, K8S_GPU_NODE_SELECTOR='{"nvidia.com/gpu.present": "true"}')
    assert problems(spec, SECRETS.values(), VERSIONS[-1:] if stage != "train" else VERSIONS) == []
    ct = container(spec)
    assert ct["command"] == ["python", "-m", "stages", stage, "--flag"]
    assert ct["workingDir"] == str(WORKDIR)
    assert {"name": "workspace", "mountPath": str(WORKDIR)} in ct["volumeMounts"]
    assert spec["spec"]["backoffLimit"] == 0


def test_secrets_by_reference_only_and_only_to_mlflow_stages():
    for stage in ("train", "evaluate", "register"):
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
            for e in container(build(stage))["env"]
            if "valueFrom" in e
        }
        assert refs == dict.fromkeys(credentials.STAGE_SECRETS, "cifar100-secrets")
    for stage in ("ingest", "validate", "preprocess", "profile"):
        assert not [e for e in container(build(stage))["env"] if "valueFrom" in e or e["name"] in SECRETS]


def test_gpu_in_limits_for_gpu_stages_only():
    train = build("train", K8S_GPUS="2")
    assert container(train)["resources"]["limits"][GPU] == "2"
    assert train["spec"]["template"]["spec"]["tolerations"][0]["key"] == GPU
    assert GPU not in container(build("preprocess"))["resources"]["limits"]
    assert GPU not in container(build("train", {"PIPELINE_GPUS": "none"}))["resources"]["limits"]


def test_resources_from_settings_per_stage():
    spec = build(
        "train", K8S_RESOURCES='{"train": {"limits": {"memory": "40Gi"}}, "default": {"requests": {"cpu": "3"}}}'
    )
    assert container(spec)["resources"]["limits"]["memory"] == "40Gi"
    assert container(spec)["resources"]["requests"]["cpu"] == "3"
    with pytest.raises(PipelineError, match="K8S_RESOURCES"):
        settings(K8S_RESOURCES='{"train": {"limits": {"memory": "lots"}}}')


def test_semantic_checks_catch_what_schemas_miss():
    spec = build("train")
    pod = spec["spec"]["template"]["spec"]
    pod["restartPolicy"] = "OnFailure"
    pod["securityContext"]["runAsNonRoot"] = False
    container(spec)["resources"]["requests"][GPU] = "1"
    container(spec)["env"].append({"name": "LEAK", "value": SECRETS["MLFLOW_TRACKING_PASSWORD"]})
    found = " | ".join(semantic_problems(spec, SECRETS.values()))
    for part in ("restartPolicy", "runAsNonRoot", "limits only", "LEAK carries a secret value"):
        assert part in found


def test_job_name_is_per_project_and_stage_and_a_valid_name():
    name = job_name("preprocess", WORKDIR)
    assert name == job_name("preprocess", WORKDIR) != job_name("preprocess", Path("/other"))
    assert len(name) <= 63 and name.islower()


def test_pod_verdicts():
    def pod(state=None, **status):
        return {"status": {"containerStatuses": [{"name": "stage", "state": state or {}}], **status}}

    assert k8s_pod.started(pod({"running": {}})) and not k8s_pod.ended(pod({"running": {}}))
    oom = pod({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    assert k8s_pod.exit_code(oom) == 137 and "out-of-memory" in (k8s_pod.outcome("train", oom) or "")
    assert k8s_pod.outcome("train", pod({"terminated": {"exitCode": 0}})) is None
    assert "evicted" in (k8s_pod.outcome("train", pod(phase="Failed", reason="Evicted")) or "")
    assert "cannot pull image img" in (k8s_pod.stuck(pod({"waiting": {"reason": "ImagePullBackOff"}}), "img") or "")
    unsched = {"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}}
    assert "cannot be scheduled" in (k8s_pod.stuck(unsched, "img") or "")


def test_lease_expiry():
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    fresh = {"holderIdentity": "a", "leaseDurationSeconds": 60, "renewTime": "2026-01-01T11:59:30.000000Z"}
    assert not k8s_lease.expired(fresh, now)
    assert k8s_lease.expired({**fresh, "renewTime": "2026-01-01T11:58:00.000000Z"}, now)
    assert k8s_lease.expired({}, now)
    assert k8s_lease.identity({"PIPELINE_RUN": "run 7/x"}) == "run-7-x"


def _fake_proc(root, chain):
    """A /proc holding `chain` = [(pid, comm, ppid), ...]."""
    for pid, comm, ppid in chain:
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "stat").write_text(f"{pid} ({comm}) S {ppid} 1 1 0 -1\n")
        (root / str(pid) / "comm").write_text(f"{comm}\n")
    return root


def test_run_pid_skips_the_shells_dvc_starts_a_cmd_with(tmp_path, monkeypatch):
    """One run, one holder, whether DVC's shell execs the stage (dash, bash) or forks it (older sh)."""
    monkeypatch.setattr(k8s_lease.os, "getpid", lambda: 40)
    forked = _fake_proc(tmp_path / "a", [(40, "python", 30), (30, "sh", 20), (20, "dvc (x) y", 10), (10, "bash", 1)])
    assert k8s_lease.run_pid(forked) == 20
    execed = _fake_proc(tmp_path / "b", [(40, "python", 20), (20, "dvc", 10), (10, "bash", 1)])
    assert k8s_lease.run_pid(execed) == 20
    monkeypatch.setattr(k8s_lease.os, "getppid", lambda: 7)
    assert k8s_lease.run_pid(tmp_path / "none") == 7  # no /proc: the parent


def test_workspace_mount_is_the_claims_root_also_for_a_sweeps_experiment_workspace():
    plain = settings()
    assert k8s_spec.workspace_mount(Path("/ws/proj"), plain) == Path("/ws/proj")
    exp = Path("/ws/proj/.dvc/tmp/exps/tmpab12cd")  # where a DVC queue worker runs an experiment
    assert k8s_spec.workspace_mount(exp, plain) == Path("/ws/proj")
    spec = k8s_spec.pod_spec(["train"], exp, plain, {})
    assert spec["containers"][0]["workingDir"] == str(exp)
    assert {"name": "workspace", "mountPath": "/ws/proj"} in spec["containers"][0]["volumeMounts"]
    assert k8s_spec.workspace_mount(exp, settings(K8S_MOUNT_PATH="/ws")) == Path("/ws")
    with pytest.raises(PipelineError, match="K8S_MOUNT_PATH=/elsewhere does not hold the project /ws/proj"):
        k8s_spec.workspace_mount(Path("/ws/proj"), settings(K8S_MOUNT_PATH="/elsewhere"))
