"""deploy/: every rendered manifest of every overlay is valid against the Kubernetes OpenAPI schemas
(kubernetes_validate, offline, strict: an unknown field fails), and holds what the schema cannot
check: probes on routes the server has, rolling updates that never drop a ready pod, GPUs only in
the gpu overlay's limits, credentials only by reference, non-root pods, a minimal runner Role."""

from __future__ import annotations

import shutil

import kubernetes_validate
import pytest

from ops import k8s
from runner.credentials import SECRETS, STAGE_SECRETS
from serve.settings import ServeEnv

pytestmark = pytest.mark.skipif(
    not (shutil.which("kubectl") or shutil.which("kustomize")), reason="needs kubectl (kustomize) on PATH"
)
K8S_VERSIONS = ("1.29.0", "1.32.0", "1.37.0")  # oldest supported by managed clusters .. newest schema shipped
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN")
GPU = "nvidia.com/gpu"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {overlay: k8s.documents(k8s.kustomize(overlay)) for overlay in k8s.overlays()}


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name: str) -> dict:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    kinds = ("Deployment", "StatefulSet", "Job")
    return [(f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]) for d in docs if d["kind"] in kinds]


def containers(docs: list[dict]) -> list[tuple[str, dict]]:
    return [(f"{where}:{c['name']}", c) for where, spec in pod_specs(docs) for c in spec["containers"]]


def test_both_overlays_render(rendered):
    assert set(rendered) >= {"cpu", "gpu"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_is_valid_against_the_openapi_schema(rendered, version):
    for overlay, docs in rendered.items():
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']} on {version}: {exc.message}")


def test_the_validator_does_refuse_a_bad_manifest(rendered):
    """The schema check has teeth: a wrong type and an unknown field both fail."""
    bad = one(rendered["cpu"], "Deployment", "serve")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**bad, "spec": {**bad["spec"], "replicas": "two"}}, K8S_VERSIONS[-1], strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**bad, "spec": {**bad["spec"], "replica": 2}}, K8S_VERSIONS[-1], strict=True)


def test_probes_and_scrape_path_are_routes_of_the_server(rendered, tmp_path):
    from serve import app, settings

    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}  # nothing written to the project
    routes = {r.path for r in app.create_app(settings.load(k8s.ROOT / "params.yaml", env), follow=False).routes}
    for docs in rendered.values():
        serve = one(docs, "Deployment", "serve")
        (ctr,) = serve["spec"]["template"]["spec"]["containers"]
        assert ctr["readinessProbe"]["httpGet"]["path"] == "/ready" in routes
        assert ctr["livenessProbe"]["httpGet"]["path"] == "/health" in routes
        notes = serve["spec"]["template"]["metadata"]["annotations"]
        assert notes["prometheus.io/path"] in routes and notes["prometheus.io/scrape"] == "true"
        assert int(notes["prometheus.io/port"]) in {p["containerPort"] for p in ctr["ports"]}


def test_the_server_follows_the_champion_alias_with_known_settings(rendered):
    known = {f"SERVE_{f}".upper() for f in ServeEnv.model_fields}
    for docs in rendered.values():
        (ctr,) = one(docs, "Deployment", "serve")["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in ctr["env"]}
        assert env["SERVE_MODEL"] == "champion"
        assert {n for n in env if n.startswith("SERVE_")} <= known, "a SERVE_ name serve/settings.py does not read"


def test_rollouts_never_drop_a_ready_server(rendered):
    for docs in rendered.values():
        for dep in by_kind(docs, "Deployment"):
            assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, dep["metadata"]["name"]
        serve = one(docs, "Deployment", "serve")
        hpa = one(docs, "HorizontalPodAutoscaler", "serve")
        pdb = one(docs, "PodDisruptionBudget", "serve")
        assert serve["spec"]["replicas"] >= 2 and hpa["spec"]["minReplicas"] >= 2
        assert hpa["spec"]["scaleTargetRef"]["name"] == "serve" and hpa["apiVersion"] == "autoscaling/v2"
        assert pdb["spec"]["selector"]["matchLabels"].items() <= serve["spec"]["template"]["metadata"]["labels"].items()


def test_gpus_only_in_limits_and_only_in_the_gpu_overlay(rendered):
    for overlay, docs in rendered.items():
        for where, ctr in containers(docs):
            resources = ctr.get("resources", {})
            assert GPU not in resources.get("requests", {}), f"{overlay} {where}: a GPU goes in limits only"
            if overlay != "gpu":
                assert GPU not in resources.get("limits", {}), f"{overlay} {where}: GPU outside the gpu overlay"
    (ctr,) = one(rendered["gpu"], "Deployment", "serve")["spec"]["template"]["spec"]["containers"]
    assert ctr["resources"]["limits"][GPU] == "1"
    assert {"name": "SERVE_DEVICE", "value": "cuda"} in ctr["env"]


def test_credentials_only_by_reference(rendered):
    secret_names = set(SECRETS) | {"PGPASSWORD", "POSTGRES_PASSWORD"}
    for overlay, docs in rendered.items():
        assert by_kind(docs, "Secret") == [], f"{overlay}: ships a Secret; users create theirs"
        for where, ctr in containers(docs):
            for e in ctr.get("env", []):
                if e["name"] in secret_names or any(w in e["name"] for w in SECRET_WORDS):
                    assert "secretKeyRef" in e.get("valueFrom", {}), f"{overlay} {where}: {e['name']} has a value"
        for cm in by_kind(docs, "ConfigMap"):
            assert not any(w in k.upper() for k in cm.get("data", {}) for w in SECRET_WORDS), cm["metadata"]["name"]


def test_the_runner_gets_every_stage_credential_by_reference(rendered):
    job = one(k8s.fresh_job(rendered["cpu"], "x"), "Job", "run-x")
    (ctr,) = job["spec"]["template"]["spec"]["containers"]
    refs = {e["name"] for e in ctr["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert set(STAGE_SECRETS) <= refs
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "runner"


def test_pods_run_as_non_root(rendered):
    for overlay, docs in rendered.items():
        for where, spec in pod_specs(docs):
            sc = spec["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0, f"{overlay} {where}"
        for where, ctr in containers(docs):
            assert ctr["securityContext"]["allowPrivilegeEscalation"] is False, f"{overlay} {where}"
            assert ctr["securityContext"]["capabilities"]["drop"] == ["ALL"], f"{overlay} {where}"


def test_the_runner_role_allows_only_what_it_needs(rendered):
    allowed = {
        ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
        ("", "pods"): {"get", "list", "watch"},
        ("", "pods/log"): {"get"},
        ("coordination.k8s.io", "leases"): {"create", "get", "update"},
    }
    for docs in rendered.values():
        assert by_kind(docs, "ClusterRole") == [] and by_kind(docs, "ClusterRoleBinding") == []
        for rule in one(docs, "Role", "runner")["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    assert set(rule["verbs"]) <= allowed.get((group, resource), set()), (group, resource)
        binding = one(docs, "RoleBinding", "runner")
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "runner", "namespace": "cifar100"}]


def test_the_workspace_is_shared_read_write_many(rendered):
    for docs in rendered.values():
        assert one(docs, "PersistentVolumeClaim", "workspace")["spec"]["accessModes"] == ["ReadWriteMany"]
