"""The Prefect flow `cifar100-retrain`: pull, reproduce, push, git sync, report.

Each task runs one of the project's entry points (flows/steps.py) in the project
directory; DVC decides what reruns and caches it, so Prefect result caching is off.
A task is retried, with exponential backoff, only after a transient failure
(remote unreachable, MLflow 5xx, Docker daemon busy); a failed validation or a
bad param fails the flow at once. Each task has a timeout. A failed, crashed or
cancelled flow sends a failure notification; the report step notifies promotions.

`python -m flows.pipeline [--project DIR] [--executor docker|local] [--steps a,b]`
runs the flow once and prints its final state and summary as one JSON line.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from flows import notify, settings
from flows.steps import STEPS, StepFailed, commands, retries_in, run_dir, run_step

FLOW_NAME = "cifar100-retrain"
DEPLOYMENT_NAME = "nightly"
TIMEOUT_GRACE_S = 60  # Prefect's timeout backs up the step's own (which stops the step's process group)


def retry_transient(task, task_run, state) -> bool:
    """Prefect's retry_condition_fn: retry a StepFailed marked transient, nothing else."""
    try:
        state.result()
    except StepFailed as exc:
        return exc.transient
    except Exception:
        return False
    return False


class OneLineFailures(logging.Filter):
    """A failed step is its one line (StepFailed names the step, the kind and the reason; the whole
    output is in <run>/<step>.log): Prefect's tracebacks of it are dropped, and so is the flow's
    repeat of what its task already logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, StepFailed):
            record.exc_info, record.exc_text = None, None
            return not record.getMessage().startswith("Encountered exception during execution")
        return True


for _name in ("prefect.task_runs", "prefect.flow_runs"):
    logging.getLogger(_name).addFilter(OneLineFailures())


@task(cache_policy=NO_CACHE, retry_condition_fn=retry_transient, log_prints=True)
def step_task(step: str, cmd: list[str], project: str, run: str, timeout_s: float, remote_timeout_s: float) -> float:
    """One step; returns its seconds."""
    extra = {"AUTOMATION_REMOTE_TIMEOUT_S": f"{remote_timeout_s:g}"}
    return run_step(step, cmd, Path(project), Path(run), timeout_s, extra).seconds


def _notify_failure(flow, flow_run, state) -> None:
    ended = "Cancelled" if state.is_cancelling() else state.name  # the runner notifies as it cancels
    notify.send("failure", f"{flow.name} run {flow_run.name} ended {ended}", state.message or "no message")


def _run_id() -> str:
    from prefect.runtime import flow_run

    return flow_run.get_id() or uuid.uuid4().hex


# A run cancelled (`make schedule` stopped while it ran: the runner cancels it) notifies as a failure too.
@flow(
    name=FLOW_NAME,
    on_failure=[_notify_failure],
    on_crashed=[_notify_failure],
    on_cancellation=[_notify_failure],
    log_prints=True,
)
def retrain(
    project: str = ".", executor: str | None = None, steps: list[str] | None = None, reason: str = "manual"
) -> dict:
    """Run the steps (all by default) in order; return the report plus retries made."""
    cfg = settings.load(project)
    cmds = commands(executor or cfg.executor, cfg.python, cfg.venv)
    run = run_dir(cfg.project, _run_id())
    chosen = list(steps or STEPS)
    unknown = sorted(set(chosen) - set(STEPS))
    if unknown:
        raise ValueError(f"steps: unknown step {unknown[0]!r}; choose from {', '.join(STEPS)}")
    print(f"{FLOW_NAME}: {reason} run of {', '.join(chosen)} in {cfg.project} ({executor or cfg.executor} executor)")
    for step in chosen:
        step_task.with_options(
            name=step,
            retries=cfg.retries,
            retry_delay_seconds=exponential_backoff(cfg.retry_delay_s) if cfg.retry_delay_s else 0,
            timeout_seconds=cfg.timeouts_s[step] + TIMEOUT_GRACE_S,
        )(step, cmds[step], str(cfg.project), str(run), cfg.timeouts_s[step], cfg.remote_timeout_s)
    report = run / "report.json"
    summary = json.loads(report.read_text()) if "report" in chosen and report.exists() else {}
    return {**summary, "retried": retries_in(run), "run_dir": str(run)}


def build_deployment(cfg: settings.Settings):
    """The served deployment: the flow on a cron schedule (AUTOMATION_CRON, nightly by default)."""
    from prefect.schedules import Cron

    return retrain.to_deployment(
        name=DEPLOYMENT_NAME,
        schedules=[Cron(cfg.cron, timezone=cfg.timezone)],
        parameters={"project": str(cfg.project), "reason": "schedule"},
        description="Nightly pull, reproduce, push, git sync and report of the CIFAR-100 pipeline",
        tags=["cifar100"],
    )


def run_once(project: str, executor: str | None, steps: list[str] | None, reason: str = "manual") -> dict:
    """Run the flow once; {"state": final state name, "summary": ..., "message": ...}."""
    state = retrain(project=project, executor=executor, steps=steps, reason=reason, return_state=True)
    result = state.result(raise_on_failure=False)
    summary = result if isinstance(result, dict) else {}
    return {"state": state.name, "summary": summary, "message": "" if state.is_completed() else state.message}


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="run the cifar100-retrain Prefect flow once")
    ap.add_argument("--project", default=".")
    ap.add_argument("--executor", choices=("docker", "local"), help="default: AUTOMATION_EXECUTOR or docker")
    ap.add_argument("--steps", help=f"comma-separated subset of {','.join(STEPS)}")
    args = ap.parse_args(argv)
    steps = args.steps.split(",") if args.steps else None
    try:
        out = run_once(args.project, args.executor, steps)
    except settings.Fail as exc:
        print(f"automation: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0 if out["state"] == "Completed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
