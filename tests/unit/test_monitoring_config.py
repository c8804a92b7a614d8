"""The monitoring stack's files: Grafana provisioning and dashboard JSON, the Prometheus
config and alert rules (promtool), and the compose profile that runs them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from flows.settings import AutomationSettings
from tests.support import prometheus

ROOT = Path(__file__).resolve().parents[2]
MON = ROOT / "monitoring"


def _contract() -> set[str]:
    """The serving contract's metric names, from the server's own registry (a counter's series end in
    _total; a histogram also has _bucket, _sum and _count series)."""
    from serve.metrics import Metrics

    names = set()
    for family in Metrics().registry.collect():
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


CONTRACT = _contract()


def _yaml(path: Path):
    """The file as YAML, compose's required-variable guards (`${VAR:?message}`) read as `${VAR}`."""
    return YAML(typ="safe", pure=True).load(re.sub(r"\$\{(\w+):\?[^}]*\}", r"${\1}", path.read_text()))


def _metrics(expr: str) -> set[str]:
    return {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"cifar100_[a-z_]+", expr)}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads((MON / "grafana" / "dashboards" / "cifar100-serve.json").read_text())


def test_dashboard_is_valid_and_reads_only_contract_metrics_from_the_provisioned_source(dashboard):
    (source,) = _yaml(MON / "grafana" / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://127.0.0.1:9090"
    panels = dashboard["panels"]
    assert dashboard["uid"] and dashboard["title"] and panels
    assert len({p["id"] for p in panels}) == len(panels)
    used = set()
    for panel in panels:
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"] and len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"] and target["expr"].strip()
            used |= _metrics(target["expr"])
    assert used <= CONTRACT, used - CONTRACT
    assert {"cifar100_drift_score", "cifar100_drift_detected", "cifar100_request_latency_seconds"} <= used


def test_dashboard_provider_reads_the_folder_compose_mounts():
    (provider,) = _yaml(MON / "grafana" / "provisioning" / "dashboards" / "cifar100.yml")["providers"]
    grafana = _yaml(ROOT / "docker-compose.yml")["services"]["grafana"]
    mounts = dict(v.removesuffix(":ro").split(":", 1) for v in grafana["volumes"])
    assert mounts["${PROJECT_DIR}/monitoring/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["${PROJECT_DIR}/monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).name == "cifar100-serve.json" and Path(home).parent == Path(provider["options"]["path"])


def test_compose_profile_runs_prometheus_on_the_repo_config():
    services = _yaml(ROOT / "docker-compose.yml")["services"]
    for name in ("prometheus", "alertmanager", "grafana"):
        assert services[name]["profiles"] == ["monitoring"] and services[name]["network_mode"] == "host"
    assert "profiles" not in services["dvc-runner"]  # `make run` is unchanged
    prom = services["prometheus"]
    assert prom["volumes"] == ["${PROJECT_DIR}/monitoring:/etc/prometheus:ro"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    am = services["alertmanager"]
    assert am["volumes"] == ["${PROJECT_DIR}/monitoring:/etc/alertmanager:ro"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in am["command"]
    assert "--web.listen-address=127.0.0.1:9093" in am["command"]  # where prometheus.yml sends alerts


def test_prometheus_scrapes_the_servers_default_address_and_loads_the_rules():
    config = _yaml(MON / "prometheus.yml")
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "cifar100-serve" and job["static_configs"] == [{"targets": ["127.0.0.1:8080"]}]
    assert config["rule_files"] == ["alerts.yml", "guardrails.yml"]
    assert config["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["127.0.0.1:9093"]}]}]


def test_guardrail_rules_decide_per_variant_on_contract_metrics():
    """The labels the receiver (flows/guardrail.py) acts on: variant and version, and guardrail="true"."""
    rules = {r["alert"]: r for g in _yaml(MON / "guardrails.yml")["groups"] for r in g["rules"]}
    assert set(rules) == {"Cifar100VariantHighErrorRate", "Cifar100VariantHighP99Latency"}
    for rule in rules.values():
        assert _metrics(rule["expr"]) <= CONTRACT and "by (variant, version" in rule["expr"]
        assert rule["labels"]["guardrail"] == "true" and rule["labels"]["severity"] in {"warning", "critical"}


def test_alert_rules_cover_drift_errors_and_latency_on_contract_metrics():
    rules = {r["alert"]: r for g in _yaml(MON / "alerts.yml")["groups"] for r in g["rules"]}
    assert {"Cifar100InputDrift", "Cifar100HighErrorRate", "Cifar100HighP99Latency"} <= set(rules)
    assert rules["Cifar100InputDrift"]["expr"].strip() == "cifar100_drift_detected == 1"
    assert 'status=~"5.."' in rules["Cifar100HighErrorRate"]["expr"]
    assert "histogram_quantile(0.99" in rules["Cifar100HighP99Latency"]["expr"]
    for rule in rules.values():
        assert _metrics(rule["expr"]) <= CONTRACT
        assert rule["labels"]["severity"] in {"warning", "critical"} and rule["annotations"]["summary"]


@pytest.mark.parametrize(
    "args",
    [
        ["check", "rules", "monitoring/alerts.yml"],
        ["check", "config", "monitoring/prometheus.yml"],
        ["test", "rules", "monitoring/tests/alerts_test.yml"],
        ["check", "rules", "monitoring/guardrails.yml"],
        ["test", "rules", "monitoring/tests/guardrails_test.yml"],
    ],
    ids=["check-rules", "check-config", "rule-unit-tests", "check-guardrails", "guardrail-unit-tests"],
)
def test_promtool_passes(args):
    done = subprocess.run([prometheus.binary("promtool"), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def _amtool(*args: str) -> str:
    cmd = [prometheus.binary("amtool", "prometheus-alertmanager"), *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def test_alertmanager_routes_only_guardrail_alerts_to_the_receiver():
    _amtool("check-config", "monitoring/alertmanager.yml")
    route = ["config", "routes", "test", "--config.file=monitoring/alertmanager.yml"]
    assert _amtool(*route, "guardrail=true", "variant=challenger", "version=4") == "guardrail"
    assert _amtool(*route, "alertname=Cifar100HighErrorRate", "severity=critical") == "none"
    (receiver,) = [r for r in _yaml(MON / "alertmanager.yml")["receivers"] if r["name"] == "guardrail"]
    (hook,) = receiver["webhook_configs"]
    port = AutomationSettings.model_fields["guardrail_port"].default
    assert hook["url"] == f"http://127.0.0.1:{port}/alerts" and hook["send_resolved"] is False
