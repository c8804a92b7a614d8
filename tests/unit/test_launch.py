"""The launcher's container spec, without a Docker daemon."""

from pathlib import Path

import pytest
from docker.types import DeviceRequest

from runner import launch, outcome, stage_spec
from runner.__main__ import main as dispatch
from stages.lib.cli import PipelineError

ENV = {
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
    "MLFLOW_TRACKING_PASSWORD": "s3cret",
    "AWS_SECRET_ACCESS_KEY": "nope",
    "HOME": "/root",
    "PATH": "/usr/bin",
    "PIPELINE_EXECUTOR": "docker",
    "PIPELINE_GIT_COMMIT": "abc",
    "PIPELINE_EXTRA_MOUNTS": "/data/archives",
}


def _spec(**changes):
    args = dict(
        argv=["train", "--params", "params.yaml"],
        workdir=Path("/home/u/proj"),
        image="stage:1",
        image_id="sha256:ab",
        environ=ENV,
        uid=1000,
        gid=1001,
        devices=[],
    )
    args.update(changes)
    return stage_spec.container_spec(**args)


def test_project_is_mounted_at_its_own_path_and_used_as_workdir():
    spec = _spec()
    assert spec["volumes"]["/home/u/proj"] == {"bind": "/home/u/proj", "mode": "rw"}
    assert spec["working_dir"] == "/home/u/proj"
    assert spec["volumes"]["/data/archives"] == {"bind": "/data/archives", "mode": "ro"}


def test_runs_the_same_stage_argv_as_the_invoking_user_on_host_network():
    spec = _spec()
    assert spec["command"] == ["python", "-m", "runner", "train", "--params", "params.yaml"]
    assert spec["user"] == "1000:1001"
    assert spec["network_mode"] == "host"
    assert spec["shm_size"] == stage_spec.SHM_SIZE
    assert spec["name"].startswith("cifar100-train-") and spec["labels"]["cifar100.stage"] == "train"


def test_environment_is_allow_listed_and_holds_no_secret():
    spec = _spec()
    env = spec["environment"]
    assert "MLFLOW_TRACKING_PASSWORD" not in env and "AWS_SECRET_ACCESS_KEY" not in env and "PATH" not in env
    assert env["MLFLOW_TRACKING_URI"] == ENV["MLFLOW_TRACKING_URI"]  # train talks to MLflow
    assert env["PIPELINE_EXECUTOR"] == "local" and env["PIPELINE_IMAGE_ID"] == "sha256:ab"
    assert env["PIPELINE_STAGE_EXECUTOR"] == "docker" and env["PIPELINE_IMAGE_DIGEST"] == "none"
    assert _spec(image_digest="stage@sha256:cd")["environment"]["PIPELINE_IMAGE_DIGEST"] == "stage@sha256:cd"
    assert env["PIPELINE_GIT_COMMIT"] == "abc" and env["HOME"] == stage_spec.STAGE_HOME
    assert env["PIPELINE_TETHER"] == "1" and spec["stdin_open"]  # secrets come over stdin
    assert "s3cret" not in repr(spec)


@pytest.mark.parametrize("stage", ["ingest", "validate", "preprocess"])
def test_stages_without_mlflow_get_neither_its_settings_nor_any_secret(stage):
    assert stage_spec.stage_secrets(stage, ENV) == {}
    assert not any(k.startswith(("MLFLOW_", "AWS_")) for k in _spec(argv=[stage])["environment"])


@pytest.mark.parametrize("stage", ["train", "evaluate", "register"])
def test_mlflow_stages_get_its_secrets_only(stage):
    assert stage_spec.stage_secrets(stage, {**ENV, "MLFLOW_TRACKING_TOKEN": ""}) == {
        "MLFLOW_TRACKING_PASSWORD": "s3cret",
        "AWS_SECRET_ACCESS_KEY": "nope",  # an S3 artifact store without proxying needs them
    }


def test_stage_containers_carry_their_runner_for_orphan_cleanup():
    labels = _spec(environ={**ENV, "PIPELINE_RUNNER_ID": "f" * 64})["labels"]
    assert labels["cifar100.runner"] == "f" * 64 and labels["cifar100.workdir"] == "/home/u/proj"


def test_kills_and_interrupts_are_judged_by_runner_outcome():  # tested in tests/unit/test_outcome.py
    assert launch.verdict is outcome.verdict


def test_image_digest_is_the_registry_digest_or_none():
    assert stage_spec.image_digest({"RepoDigests": ["r/stage@sha256:cd", "s@sha256:cd"]}) == "r/stage@sha256:cd"
    assert stage_spec.image_digest({"RepoDigests": []}) == stage_spec.image_digest({}) == "none"


NVIDIA = {"Runtimes": {"runc": {}, "nvidia": {}}}
CDI = {"Runtimes": {"runc": {}}, "DiscoveredDevices": [{"Source": "cdi", "ID": "nvidia.com/gpu=0"}]}
NONE = {"Runtimes": {"runc": {}}, "CDISpecDirs": ["/etc/cdi"]}


@pytest.mark.parametrize("info", [NVIDIA, CDI])
def test_auto_requests_all_gpus_when_the_daemon_has_them(info):
    devices, notice = stage_spec.gpu_request("auto", info)
    assert notice is None and devices == [DeviceRequest(count=-1, capabilities=[["gpu"]])]


def test_auto_falls_back_to_cpu_with_a_notice():
    devices, notice = stage_spec.gpu_request("auto", NONE)
    assert devices == [] and "running on CPU" in notice


def test_forced_modes():
    assert stage_spec.gpu_request("none", NVIDIA) == ([], None)
    devices, _ = stage_spec.gpu_request("0,1", NVIDIA)
    assert devices[0]["DeviceIDs"] == ["0", "1"]
    with pytest.raises(PipelineError, match="no NVIDIA runtime"):
        stage_spec.gpu_request("all", NONE)
    with pytest.raises(PipelineError, match="PIPELINE_GPUS must be"):
        stage_spec.gpu_request("gpu0", NVIDIA)


def test_missing_image_setting_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.delenv("PIPELINE_IMAGE", raising=False)
    assert launch.main(["ingest"]) == 1
    assert "PIPELINE_IMAGE is not set" in capsys.readouterr().err


def test_unreachable_daemon_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_IMAGE", "stage:1")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert launch.main(["ingest"]) == 1
    assert "Docker daemon not reachable at unix:///nonexistent/docker.sock" in capsys.readouterr().err


def test_dispatcher_rejects_unknown_stage_and_executor(monkeypatch, capsys):
    assert dispatch([]) == 2
    assert dispatch(["nope"]) == 2
    monkeypatch.setenv("PIPELINE_EXECUTOR", "nomad")
    assert dispatch(["ingest"]) == 2
    assert "PIPELINE_EXECUTOR must be one of local, docker, k8s" in capsys.readouterr().err
