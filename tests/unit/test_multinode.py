"""runner/multinode.py: the pods' torchrun argv, the headless Service and the Indexed Job patch
(checked against Kubernetes' own schemas, 1.29 to the newest kubernetes-validate holds), and the
runner's refusal of train.nodes > 1 without the k8s executor."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
from torch.distributed import run as torchrun

from runner import __main__ as runner_entry
from runner import multinode
from tests.conftest import write_params

TRAIN = ["train", "--params", "params.yaml", "--data", "data/processed", "--model", "models"]
VERSIONS = ("1.29", "1.33", "1.37")  # the oldest supported, a middle one, the newest schemas here


def _job(name: str = "train-3f2a") -> dict:
    """A one-pod v1 Job as an executor might write it."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "ml", "labels": {"app": "pipeline"}},
        "spec": {
            "backoffLimit": 2,
            "template": {
                "metadata": {"labels": {"app": "pipeline"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "stage", "image": "stage:1", "command": ["python", "-m", "runner"], "args": TRAIN}
                    ],
                },
            },
        },
    }


def test_torchrun_argv_is_exact():
    argv = multinode.torchrun_argv(3, "gpu", "job-0.job:29500", "job", TRAIN, local_addr="job-1.job")
    assert argv == [
        "python",
        "-m",
        "torch.distributed.run",
        *("--nnodes", "3", "--nproc-per-node", "gpu"),
        *("--rdzv-backend", "c10d", "--rdzv-endpoint", "job-0.job:29500", "--rdzv-id", "job"),
        *("--rdzv-conf", "join_timeout=1800", "--local-addr", "job-1.job"),
        *("-m", "stages", *TRAIN),
    ]
    assert "--local-addr" not in multinode.torchrun_argv(2, 1, "h:1", "r", TRAIN)
    with pytest.raises(ValueError, match="nodes must be >= 1, got 0"):
        multinode.torchrun_argv(0, 1, "h:1", "r", TRAIN)


def test_torch_own_parser_reads_the_pod_command_as_meant():
    args = torchrun.parse_args(multinode.pod_command("train-3f2a", 4, "gpu", TRAIN)[3:])
    assert (args.nnodes, args.nproc_per_node, args.rdzv_backend) == ("4", "gpu", "c10d")
    assert args.rdzv_endpoint == "train-3f2a-0.train-3f2a:29500" and args.rdzv_id == "train-3f2a"
    assert args.local_addr == "train-3f2a-$(JOB_COMPLETION_INDEX).train-3f2a"
    assert (args.module, args.training_script, args.training_script_args) == (True, "stages", TRAIN)


def test_pod_zero_sorts_first_so_it_holds_rank_zero():
    """c10d numbers nodes in the sorted order of their addresses: pod 0 must come first for any N."""
    template = multinode.pod_local_addr("train-3f2a")
    for nodes in (2, 10, 11, 101):
        addrs = [template.replace("$(JOB_COMPLETION_INDEX)", str(i)) for i in range(nodes)]
        assert sorted(addrs)[0] == addrs[0] == multinode.rdzv_endpoint("train-3f2a").rsplit(":", 1)[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_are_valid_kubernetes(version):
    service = multinode.headless_service("train-3f2a", "ml", {"app": "pipeline"})
    job = multinode.multinode_job(_job(), 3, "gpu", TRAIN)
    for manifest in (service, job):
        kubernetes_validate.validate(manifest, version, strict=True)  # raises on any schema error


def test_the_service_fronts_the_job_pods_and_the_job_runs_n_of_them():
    service = multinode.headless_service("train-3f2a", "ml", {"app": "pipeline"})
    assert service["spec"]["clusterIP"] == "None" and service["metadata"]["name"] == "train-3f2a"
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": "train-3f2a"}
    assert service["spec"]["ports"][0]["port"] == 29500
    base = _job()
    job = multinode.multinode_job(base, 3, "gpu", TRAIN)
    spec = job["spec"]
    assert [spec[k] for k in ("completionMode", "completions", "parallelism", "backoffLimit")] == ["Indexed", 3, 3, 0]
    assert spec["template"]["spec"]["subdomain"] == "train-3f2a"
    (container,) = spec["template"]["spec"]["containers"]
    assert container["command"] == multinode.pod_command("train-3f2a", 3, "gpu", TRAIN) and "args" not in container
    assert container["image"] == "stage:1" and spec["template"]["spec"]["restartPolicy"] == "Never"  # kept
    assert base == _job()  # the executor's spec is not changed


def test_merge_lays_mappings_over_each_other_without_changing_either():
    base, patch = {"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"b": 2}, "e": {"f": 3}}
    saved = copy.deepcopy((base, patch))
    assert multinode.merge(base, patch) == {"a": {"b": 2, "c": [1]}, "d": 1, "e": {"f": 3}}
    assert (base, patch) == saved


@pytest.fixture
def nodes_params(tmp_path, tiny_raw, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def write(nodes) -> None:
        write_params(tmp_path / "params.yaml", {**tiny_raw, "train": {**tiny_raw["train"], "nodes": nodes}})

    return write


def test_nodes_come_from_the_train_stage_params(nodes_params):
    nodes_params(4)
    assert multinode.nodes_for(TRAIN) == 4
    assert multinode.nodes_for(["train", "--params=params.yaml"]) == 4
    assert multinode.nodes_for(["evaluate", "--params", "params.yaml"]) == 1
    assert multinode.nodes_for(["train", "--params", "missing.yaml"]) == 1  # the stage says what is wrong
    nodes_params("4")
    assert multinode.nodes_for(TRAIN) == 1  # not an int: params validation names it


@pytest.mark.parametrize("executor", ["local", "docker"])
def test_the_runner_refuses_several_nodes_without_kubernetes(nodes_params, executor, monkeypatch, capsys):
    nodes_params(2)
    monkeypatch.setenv("PIPELINE_EXECUTOR", executor)
    assert runner_entry.main(TRAIN) == 1
    line = "train: error: params.yaml: train.nodes is 2; more than one node needs PIPELINE_EXECUTOR=k8s\n"
    assert capsys.readouterr().err == line
    assert multinode.executor_problem("k8s", TRAIN) is None
    nodes_params(1)
    assert multinode.executor_problem(executor, TRAIN) is None
