"""A real Alertmanager (Debian's `prometheus-alertmanager`) on 127.0.0.1, for the guardrail tests.

It runs the repository's monitoring/alertmanager.yml with two test-only changes: the guardrail
receiver's URL is the one under test, and groups are sent after 1 s (group_wait, group_interval)
instead of the 10 s to minutes a production route waits. Clustering is off (no port 9094).
"""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

from tests.support.prometheus import MONITORING, binary
from tests.support.servers import Server, free_port, launch, wait_ready


def write_config(workdir: Path, receiver_url: str) -> Path:
    yaml = YAML(typ="safe", pure=True)
    config = yaml.load((MONITORING / "alertmanager.yml").read_text())
    for route in [config["route"], *config["route"].get("routes", [])]:
        route.update({"group_wait": "1s", "group_interval": "1s"})
    (receiver,) = [r for r in config["receivers"] if r["name"] == "guardrail"]
    receiver["webhook_configs"][0]["url"] = receiver_url
    path = workdir / "alertmanager.yml"
    with open(path, "w") as f:
        yaml.dump(config, f)
    return path


def start(workdir: Path, receiver_url: str) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        binary("prometheus-alertmanager", "prometheus-alertmanager"),
        f"--config.file={write_config(workdir, receiver_url)}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    server = launch("alertmanager", cmd, workdir, {}, f"http://127.0.0.1:{port}")
    wait_ready(server, "/-/ready")
    return server
