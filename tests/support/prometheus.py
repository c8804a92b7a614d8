"""A real Prometheus server (Debian's `prometheus` package) on 127.0.0.1, for the monitoring tests.

It runs the repository's monitoring/prometheus.yml and its rule files with four test-only changes:
the scrape target is the server under test, alerts go to the test's Alertmanager (or none), scrape
and rule evaluation run every second, and each alert's `for` is 0s (so an alert fires on the first
evaluation that meets its expression, instead of after minutes). CI installs the package with .ci/setup-prometheus.sh.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.support.servers import ROOT, Server, free_port, launch, wait_ready

MONITORING = ROOT / "monitoring"


def binary(name: str, package: str = "prometheus") -> str:
    """Path of a Prometheus tool (amtool, prometheus-alertmanager: package prometheus-alertmanager);
    skips the test where it is missing (fails in CI)."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have {name} (.ci/setup-prometheus.sh)")
        pytest.skip(f"{name} not installed (Debian package `{package}`; .ci/setup-prometheus.sh)")
    return path


def write_config(workdir: Path, target: str, alertmanager: str | None = None) -> Path:
    """monitoring/prometheus.yml and its rule files, changed only as the module docstring says;
    alerts go to the Alertmanager at `alertmanager` (host:port), or to none."""
    yaml = YAML(typ="safe", pure=True)
    config = yaml.load((MONITORING / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [target]}]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}] if alertmanager else []
    for name in config["rule_files"]:
        rules = yaml.load((MONITORING / name).read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule["for"] = "0s"
        with open(workdir / name, "w") as f:
            yaml.dump(rules, f)
    with open(workdir / "prometheus.yml", "w") as f:
        yaml.dump(config, f)
    return workdir / "prometheus.yml"


def start(workdir: Path, target: str, alertmanager: str | None = None) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir, target, alertmanager)
    port = free_port()
    cmd = [
        binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    server = launch("prometheus", cmd, workdir, {}, f"http://127.0.0.1:{port}")
    wait_ready(server, "/-/ready")
    return server


def api(server: Server, path: str, **query) -> dict:
    url = f"{server.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())["data"]


def firing(server: Server) -> set[str]:
    return {a["labels"]["alertname"] for a in api(server, "alerts")["alerts"] if a["state"] == "firing"}


def wait_for(check, timeout_s: float, what: str, interval_s: float = 0.5):
    """Poll check() until it returns something truthy; fail naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
