"""The guardrail part of `make ab-smoke`: a challenger that fails, and the real monitoring stack
that takes it out of traffic.

The failure is a real one: v3 is the champion's own net traced to TorchScript with a batch of
one baked into a reshape (torch.jit.trace's classic pitfall). It passes the server's load check
(one zero image) and raises on every batch of two images or more, so each request to it is a 500
counted in cifar100_prediction_errors_total{variant="challenger"}.

The stack: a real Prometheus (Debian's `prometheus`) scraping the server, a real Alertmanager
(`prometheus-alertmanager`) and the guardrail receiver (`python -m flows.guardrail_server`), on
sandbox copies of monitoring/*.yml changed only so a smoke run ends in seconds: scrape and rule
evaluation every second, each rule's `for` 5 s (2 m and 5 m in the repository), Alertmanager's
group_wait and group_interval 1 s, and the sandbox's ports.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from smoke.sandbox import ROOT
from smoke.servers import Server, free_port, launch, wait_ready

MONITORING = ROOT / "monitoring"
RULE_FOR = "5s"  # each alert's `for` in the sandbox copy


def _yaml():
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True)


def broken_version(client, name: str, work: Path) -> str:
    """Register v1's net traced with a batch of one (see the module docstring); return its version."""
    import mlflow
    import torch

    from stages.lib import registry

    class FixedBatch(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.reshape(1, 32, 32, 3))  # traced: the 1 stays, whatever the batch

    source = client.get_model_version_download_uri(name, "1")
    local = Path(mlflow.artifacts.download_artifacts(source, dst_path=str(work), tracking_uri=client.tracking_uri))
    inner = mlflow.pytorch.load_model(str(local), map_location="cpu").eval()
    traced = torch.jit.trace(FixedBatch(inner), torch.zeros((1, 32, 32, 3), dtype=torch.uint8), check_trace=False)
    exp = client.get_experiment_by_name("ab-smoke")  # artifacts in the sandbox, not ./mlruns
    exp_id = exp.experiment_id if exp else client.create_experiment("ab-smoke", (work / "mlartifacts-ab").as_uri())
    run_id = client.create_run(exp_id, run_name="batch-of-one").info.run_id
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        out = Path(tmp) / registry.ARTIFACT_PATH
        mlflow.pytorch.save_model(
            traced, str(out), serialization_format="pickle", extra_files=[str(local / "extra_files" / "model.json")]
        )
        client.log_artifacts(run_id, str(out), registry.ARTIFACT_PATH)
    client.set_terminated(run_id)
    uri = f"{client.get_run(run_id).info.artifact_uri}/{registry.ARTIFACT_PATH}"
    return registry.create_version(client, name, uri, run_id, {"ab-smoke": "batch of one"})


def _prometheus_config(work: Path, target: str, alertmanager: str) -> Path:
    yaml = _yaml()
    config = yaml.load((MONITORING / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    config["scrape_configs"][0]["static_configs"] = [{"targets": [target]}]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    for rule_file in config["rule_files"]:
        rules = yaml.load((MONITORING / rule_file).read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule["for"] = RULE_FOR
        with open(work / rule_file, "w") as f:
            yaml.dump(rules, f)
    with open(work / "prometheus.yml", "w") as f:
        yaml.dump(config, f)
    return work / "prometheus.yml"


def _alertmanager_config(work: Path, receiver_url: str) -> Path:
    yaml = _yaml()
    config = yaml.load((MONITORING / "alertmanager.yml").read_text())
    for route in [config["route"], *config["route"].get("routes", [])]:
        route.update({"group_wait": "1s", "group_interval": "1s"})
    (receiver,) = [r for r in config["receivers"] if r["name"] == "guardrail"]
    receiver["webhook_configs"][0]["url"] = receiver_url
    with open(work / "alertmanager.yml", "w") as f:
        yaml.dump(config, f)
    return work / "alertmanager.yml"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name}: not on PATH: install Debian's {name} (.ci/setup-prometheus.sh)")
    return path


def start_stack(sandbox: Path, server_url: str, started: list[Server]) -> None:
    """Receiver, Alertmanager and Prometheus on free 127.0.0.1 ports, each appended to `started`
    as soon as it runs (the caller stops them all, also on failure)."""
    work = sandbox / "monitoring"
    work.mkdir()
    port = free_port()
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{sandbox / 'mlflow.db'}",
        "AUTOMATION_GUARDRAIL_PORT": str(port),
        "AUTOMATION_NOTIFY_URLS": "",  # nobody is notified from a smoke run
        "PYTHONPATH": str(ROOT),  # run in the sandbox (its .automation state, no project .env)
    }
    cmd = [sys.executable, "-m", "flows.guardrail_server", "--params", str(sandbox / "params.yaml")]
    receiver = launch("guardrail", cmd, sandbox, env, f"http://127.0.0.1:{port}")
    started.append(receiver)
    wait_ready(receiver, "/health", timeout_s=600)
    am_port = free_port()
    am_cmd = [
        _binary("prometheus-alertmanager"),
        f"--config.file={_alertmanager_config(work, receiver.url + '/alerts')}",
        f"--storage.path={work / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",
    ]
    am = launch("alertmanager", am_cmd, work, {}, f"http://127.0.0.1:{am_port}")
    started.append(am)
    wait_ready(am, "/-/ready")
    prom_port = free_port()
    target = server_url.removeprefix("http://")
    prom_cmd = [
        _binary("prometheus"),
        f"--config.file={_prometheus_config(work, target, f'127.0.0.1:{am_port}')}",
        f"--storage.tsdb.path={work / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]
    prom = launch("prometheus", prom_cmd, work, {}, f"http://127.0.0.1:{prom_port}")
    started.append(prom)
    wait_ready(prom, "/-/ready")
