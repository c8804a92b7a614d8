"""The parts of `make k8s-smoke` that need no cluster: the test kubelet's pod environment, the
dvc.lock comparison, and the sample stage Jobs `make k8s-render` writes (ops/k8s_samples.py)."""

from __future__ import annotations

import pytest
import yaml

from ops import k8s_samples
from runner.credentials import STAGE_SECRETS
from runner.k8s_check import problems
from smoke.k8s import SECRET_KEYS
from smoke.k8s_checks import lock_differences, secret_hits
from smoke.k8s_pods import IMAGE_PATH, pod_env


def test_pod_env_takes_values_and_resolves_secret_refs_from_the_secret():
    ref = {"name": "s", "key": "TOKEN", "optional": True}
    missing = {"name": "s", "key": "ABSENT", "optional": True}
    ct = {
        "env": [
            {"name": "A", "value": "1"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": ref}},
            {"name": "ABSENT", "valueFrom": {"secretKeyRef": missing}},
        ]
    }
    assert pod_env(ct, {"TOKEN": "t0k3n"}) == {"PATH": IMAGE_PATH, "A": "1", "TOKEN": "t0k3n"}
    with pytest.raises(ValueError, match="not optional"):
        pod_env({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "X"}}}]}, {})


def test_lock_differences_names_stage_and_path(tmp_path):
    def lock(md5: str) -> dict:
        out = {"path": "models", "md5": md5}
        return {"schema": "2.0", "stages": {"train": {"cmd": "c", "deps": [], "outs": [out]}}}

    a, b = tmp_path / "a.lock", tmp_path / "b.lock"
    a.write_text(yaml.safe_dump(lock("1")))
    b.write_text(yaml.safe_dump(lock("1")))
    assert lock_differences(a, b) == []
    b.write_text(yaml.safe_dump(lock("2")))
    assert lock_differences(a, b) == ["train outs models"]


def test_sample_jobs_one_per_stage_all_valid():
    jobs = k8s_samples.sample_jobs()
    assert [j["metadata"]["labels"]["cifar100/stage"] for j in jobs] == list(k8s_samples.stage_argvs())
    assert len(jobs) == 7
    for job in jobs:
        assert problems(job, versions=["1.37.0"]) == [], job["metadata"]["name"]
    assert secret_hits(jobs, ["never-there"]) == 0


def test_render_stage_jobs_writes_them_all_or_nothing(tmp_path):
    [path] = k8s_samples.render_stage_jobs(tmp_path)
    assert len([d for d in yaml.safe_load_all(path.read_text()) if d]) == 7
    assert not list(tmp_path.glob("*.tmp"))


def test_the_smoke_dummy_secrets_are_stage_secrets():
    assert set(SECRET_KEYS) <= set(STAGE_SECRETS)
