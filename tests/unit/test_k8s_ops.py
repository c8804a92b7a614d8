"""ops.k8s: `make k8s-render` writes every overlay and what RENDERERS add; `make k8s-run` with no
reachable API server says, in one line, what it would apply; a bad overlay fails in one line."""

from __future__ import annotations

import shutil

import pytest
import yaml

from ops import k8s
from proc.run import Fail
from smoke.servers import free_port

pytestmark = pytest.mark.skipif(not shutil.which("kubectl"), reason="needs kubectl on PATH")


def test_render_writes_every_overlay_and_runs_the_hook(tmp_path, monkeypatch):
    def sample(out):
        path = out / "stage-jobs.yaml"
        path.write_text("kind: Job\n")
        return [path]

    monkeypatch.setattr(k8s, "RENDERERS", [sample])
    written = k8s.render(tmp_path / "out")
    assert [p.name for p in written] == ["cpu.yaml", "gpu.yaml", "stage-jobs.yaml"]
    for path in written[:2]:
        kinds = {d["kind"] for d in yaml.safe_load_all(path.read_text()) if d}
        assert {"Deployment", "Job", "HorizontalPodAutoscaler"} <= kinds
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_run_without_a_cluster_prints_one_line_of_what_it_would_apply(tmp_path, monkeypatch):
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))  # nothing listens there
    line = k8s.apply("gpu", stamp="20260101-000000")
    assert "\n" not in line and line.startswith("k8s-run: no cluster (")
    assert "would apply deploy/overlays/gpu:" in line
    assert "Job/run-20260101-000000" in line and "Deployment/serve" in line


def test_each_run_is_a_job_of_its_own_and_the_render_is_untouched():
    docs = k8s.documents(k8s.kustomize("cpu"))
    renamed = k8s.fresh_job(docs, "s1")
    assert [d["metadata"]["name"] for d in renamed if d["kind"] == "Job"] == ["run-s1"]
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Job"] == ["run"]


def test_an_unknown_overlay_is_named_with_the_choices():
    with pytest.raises(Fail, match=r"deploy/overlays/tpu: no such overlay; use one of cpu, gpu"):
        k8s.kustomize("tpu")


def test_a_broken_overlay_fails_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "overlays" / "bad").mkdir(parents=True)
    (tmp_path / "overlays" / "bad" / "kustomization.yaml").write_text("resources: [../missing]\n")
    monkeypatch.setattr(k8s, "DEPLOY", tmp_path)
    with pytest.raises(Fail) as err:
        k8s.kustomize("bad")
    assert str(err.value).startswith("deploy/overlays/bad: kustomize failed:") and "\n" not in str(err.value)
