"""A/B serving end to end in a sandbox (`make ab-smoke`): two variants served, feedback, the
report, the promotion decision, the guardrail taking a failing challenger out, a fuzzer.

1. smoke/sandbox.py's smoke pipeline trains and registers v1 (champion); the same run is
   registered again as v2 (the challenger alias): two versions, one training run.
2. `python -m serve` (127.0.0.1, mode ab, share 50, SQLite feedback store in the sandbox) serves
   both; KEYS client keys x PER_KEY requests of real smoke-data PNGs; each key must always get
   the same variant (sticky); each answer is labelled with its true class by POST /feedback.
3. `python -m ops.ab_report` (make ab-report) gives its verdict (on this little traffic:
   `inconclusive`, fewer labels than the 100 per variant the test needs) and
   `python -m flows.ab_promote` (make ab-promote) promotes only on `promote`.
4. The challenger alias moves to v3, which fails every batch of 2+ images (smoke/ab_guard.py);
   real Prometheus + Alertmanager + the guardrail receiver run until the registered model tag
   serve.challenger_share is "0" and the server says so (bounded by GUARD_WAIT_S).
5. Schemathesis against the same server; the server's 5xx counter is read before and after.
Prints one JSON line; exits 1 when a check fails. The project is never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from smoke import ab_guard, ab_traffic
from smoke.sandbox import ROOT, SMOKE_OVERRIDES, make_sandbox, merge, repro, scratch
from smoke.servers import Server, free_port, launch, wait_ready

KEYS, PER_KEY = 40, 3  # client keys x single-image requests each
START_S = 600  # bound on a server's start (torch + MLflow imports on 2 busy cores)
GUARD_WAIT_S = 180  # bound on the guardrail phase
SHARE_TAG = "serve.challenger_share"
VARIANTS = ("champion", "challenger")


def _env(sandbox: Path) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": f"sqlite:///{sandbox / 'mlflow.db'}",
        "SERVE_FEEDBACK_URL": f"sqlite:///{sandbox / 'feedback.db'}",
        "AB_OUT": str(sandbox / "ab"),
        "AUTOMATION_NOTIFY_URLS": "",
    }


def _serve(sandbox: Path) -> Server:
    port = free_port()
    env = {**_env(sandbox), "SERVE_PORT": str(port), "SERVE_POLL_INTERVAL_S": "1"}
    env.update({"SERVE_MODE": "ab", "SERVE_CHALLENGER_SHARE": "50"})
    cmd = [sys.executable, "-m", "serve", "--params", str(sandbox / "params.yaml")]
    server = launch("serve", cmd, sandbox, env, f"http://127.0.0.1:{port}", cwd=ROOT)
    wait_ready(server, "/ready", timeout_s=START_S)
    return server


def _op(sandbox: Path, module: str) -> tuple[int, str]:
    """`python -m module --params sandbox/params.yaml` in the sandbox (its .env, not the project's);
    (exit status, last output line)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "AB_", "SERVE_"))}
    env.update(_env(sandbox), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", module, "--params", str(sandbox / "params.yaml")]
    done = subprocess.run(cmd, cwd=sandbox, env=env, capture_output=True, text=True, timeout=300)
    lines = (done.stdout if done.returncode == 0 else done.stderr + done.stdout).strip().splitlines()
    return done.returncode, lines[-1] if lines else ""


def _both_loaded(url: str, challenger: str) -> bool:
    import httpx

    variants = httpx.get(url + "/ready", timeout=10).json().get("variants", {})
    return variants.get("challenger", {}).get("version") == challenger


def _registry(sandbox: Path):
    from mlflow import MlflowClient

    from stages.lib import params

    uri = f"sqlite:///{sandbox / 'mlflow.db'}"
    return MlflowClient(uri, uri), params.load(sandbox / "params.yaml").register.model_name


def _second_version(sandbox: Path) -> str:
    """v1's run registered again (v2) under the challenger alias: no second training."""
    from stages.lib import registry

    client, name = _registry(sandbox)
    first = client.get_model_version(name, "1")
    v2 = registry.create_version(client, name, first.source, first.run_id, {"ab-smoke": "v1 again"})
    client.set_registered_model_alias(name, registry.CHALLENGER, v2)
    return v2


def _ab_phase(sandbox: Path, url: str) -> dict:
    """Steps 2-3: sticky labelled traffic, feedback, report, promotion decision."""
    pngs = ab_traffic.labelled_pngs(sandbox, KEYS * PER_KEY)
    seen, stored = ab_traffic.ab_load(url, pngs, KEYS, PER_KEY)
    answered_by = {v for got in seen.values() for v in got}
    rc, line = _op(sandbox, "ops.ab_report")
    verdict = json.loads(line)["verdict"] if rc == 0 else f"error: {line}"
    rc_promote, why = _op(sandbox, "flows.ab_promote")
    print(f"ab-smoke: ab-promote: {why}", file=sys.stderr)
    return {
        "variants": {name: ",".join(sorted(v for n, v in answered_by if n == name)) for name in VARIANTS},
        "sticky": all(len(got) == 1 for got in seen.values()) and len(seen) == KEYS,
        "feedback": stored,
        "verdict": verdict,
        "promoted": rc_promote == 0,
    }


def _guard_phase(sandbox: Path, url: str, started: list[Server]) -> bool:
    """Step 4: True when the tag is "0" and the server sends the challenger no one."""
    import httpx

    from stages.lib import registry

    client, name = _registry(sandbox)
    broken = ab_guard.broken_version(client, name, sandbox)
    client.set_registered_model_alias(name, registry.CHALLENGER, broken)
    ab_traffic.wait_until(lambda: _both_loaded(url, broken), 300, f"the server to load challenger v{broken}")
    ab_guard.start_stack(sandbox, url, started)

    def tripped() -> bool:
        tag = client.get_registered_model(name).tags.get(SHARE_TAG)
        return tag == "0" and httpx.get(url + "/ready", timeout=10).json().get("challenger_share") == 0

    png = ab_traffic.labelled_pngs(sandbox, 1)[0][0]
    with ab_traffic.FailingLoad(url, png) as load:
        ab_traffic.wait_until(tripped, GUARD_WAIT_S, f"the guardrail to set {SHARE_TAG} to 0")
    print(f"ab-smoke: guardrail load answers by status: {dict(load.statuses)}", file=sys.stderr)
    return True


def smoke(sandbox: Path, epochs: int, examples: int) -> dict:
    repro(make_sandbox(sandbox, merge(SMOKE_OVERRIDES, {"recipes": {"fast": {"epochs": epochs}}})))
    return phases(sandbox, examples)


def phases(sandbox: Path, examples: int) -> dict:
    """Steps 2-5 on a sandbox whose pipeline has registered v1 as champion."""
    v2 = _second_version(sandbox)
    started: list[Server] = []
    try:
        server = _serve(sandbox)
        started.append(server)
        ab_traffic.wait_until(lambda: _both_loaded(server.url, v2), 300, f"the server to load challenger v{v2}")
        result = _ab_phase(sandbox, server.url)
        result["guardrail_tripped"] = _guard_phase(sandbox, server.url, started)
        rc, result["fuzz_5xx"] = ab_traffic.fuzz(server.url, sandbox / "fuzz", examples)
        print(f"ab-smoke: schemathesis exit status {rc} (sandbox fuzz/schemathesis.log)", file=sys.stderr)
    finally:
        for process in reversed(started):
            process.stop()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the sandbox for inspection")
    ap.add_argument("--epochs", type=int, default=2, help="smoke training epochs (quality does not matter here)")
    ap.add_argument("--examples", type=int, default=10, help="Schemathesis examples per operation")
    args = ap.parse_args()
    with scratch("ab-", keep=args.keep) as sandbox:  # SIGTERM too: `finally` stops every process
        result = smoke(sandbox, args.epochs, args.examples)
    print(json.dumps(result))
    ok = result["sticky"] and result["guardrail_tripped"] and result["fuzz_5xx"] == 0
    return 0 if ok and result["promoted"] == (result["verdict"] == "promote") else 1


if __name__ == "__main__":
    raise SystemExit(main())
