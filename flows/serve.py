"""`make schedule`: serve the `cifar100-retrain/nightly` deployment locally (AUTOMATION_CRON,
nightly by default) and, with AUTOMATION_DRIFT_URL set, watch that /metrics URL and
start a run of the deployment when drift is flagged (rate-limited, flows/drift.py).
Stops on Ctrl-C / SIGTERM; Prefect pauses the schedule on shutdown."""

from __future__ import annotations

import sys
import threading

from flows import drift, pipeline, settings
from ops.common import Fail


def start_drift_run() -> None:
    from prefect.deployments import run_deployment

    name = f"{pipeline.FLOW_NAME}/{pipeline.DEPLOYMENT_NAME}"
    run_deployment(name, parameters={"reason": "drift"}, timeout=0)  # queue it; the served runner picks it up


def main() -> int:
    from prefect import serve

    try:
        cfg = settings.load(".")
    except Fail as exc:
        print(f"schedule: error: {exc}", file=sys.stderr)
        return 1
    deployment = pipeline.build_deployment(cfg)
    stop = threading.Event()
    if cfg.drift_url:
        limit = drift.RateLimit(cfg.project / ".automation" / "drift.json", cfg.drift_min_interval_s)
        args = (cfg.drift_url, limit, start_drift_run, cfg.drift_poll_s, stop)
        threading.Thread(target=drift.watch, args=args, daemon=True, name="drift-trigger").start()
    print(f"schedule: serving {pipeline.FLOW_NAME}/{pipeline.DEPLOYMENT_NAME} on '{cfg.cron}' ({cfg.timezone})")
    try:
        serve(deployment)
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
