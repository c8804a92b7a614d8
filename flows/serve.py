"""`make schedule`: serve the `cifar100-retrain/nightly` deployment locally (AUTOMATION_CRON,
nightly by default) and, with AUTOMATION_DRIFT_URL set, watch that /metrics URL and
start a run of the deployment when drift is flagged (rate-limited, flows/drift.py).

The deployment is registered before the drift watcher starts, so the watcher's first
trigger finds it. Ctrl-C (SIGINT) and SIGTERM both stop it the same way, in one line:
the watcher stops at once, Prefect's runner stops polling for scheduled runs, cancels
the runs in flight and pauses the schedule, so nothing is triggered after.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading

from flows import drift, pipeline, settings
from ops.common import Fail


def start_drift_run() -> None:
    from prefect.deployments import run_deployment

    name = f"{pipeline.FLOW_NAME}/{pipeline.DEPLOYMENT_NAME}"
    run_deployment(name, parameters={"reason": "drift"}, timeout=0)  # queue it; the served runner picks it up


# A stop waits at most this long for a drift trigger under way (one run_deployment call), so the
# stop line comes after it and nothing is triggered once that line is printed.
TRIGGER_WAIT_S = 60.0


def make_runner(stop: threading.Event, busy: threading.Lock):
    """Prefect's Runner (what `prefect.serve` builds), stopping on SIGTERM and SIGINT alike, in one line.
    Prefect handles only SIGTERM itself; a Ctrl-C reached the event loop and left the runner polling."""
    from prefect.runner import Runner

    class ScheduleRunner(Runner):
        def handle_sigterm(self, signum: int = signal.SIGTERM, *args: object, **kwargs: object) -> None:
            if stop.is_set():
                return  # a second Ctrl-C while stopping: the first one is under way
            stop.set()  # the drift watcher starts nothing more
            if busy.acquire(timeout=TRIGGER_WAIT_S):  # a trigger under way ends first (bounded)
                busy.release()
            name = signal.Signals(signum).name
            print(f"schedule: {name} received: stopped polling, pausing the schedule", flush=True)
            logging.getLogger("prefect.runner").setLevel(logging.WARNING)  # that one line says it
            if not self.started or self.stopping or self._loop is None:
                raise SystemExit(0)
            self.stopping = True
            self.execute_in_background(self.astop)  # cancels runs in flight and the polling loops

    return ScheduleRunner(pause_on_shutdown=True)


def main() -> int:
    try:
        cfg = settings.load(".")
    except Fail as exc:
        print(f"schedule: error: {exc}", file=sys.stderr)
        return 1
    stop, busy = threading.Event(), threading.Lock()
    runner = make_runner(stop, busy)
    signal.signal(signal.SIGINT, runner.handle_sigterm)  # before asyncio.run, which then leaves it alone
    runner.add_deployment(pipeline.build_deployment(cfg))  # registered before the watcher may trigger it
    if cfg.drift_url:
        limit = drift.RateLimit(cfg.project / ".automation" / "drift.json", cfg.drift_min_interval_s)
        args = (cfg.drift_url, limit, start_drift_run, cfg.drift_poll_s, stop, busy)
        threading.Thread(target=drift.watch, args=args, daemon=True, name="drift-trigger").start()
    print(f"schedule: serving {pipeline.FLOW_NAME}/{pipeline.DEPLOYMENT_NAME} on '{cfg.cron}' ({cfg.timezone})")
    try:
        asyncio.run(runner.start())
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
