"""Automation settings, from the environment or `.env` (the shell wins), never from params.yaml:
no stage reads them, so changing the schedule never reruns a stage. See .env.example."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ops.common import Fail, settings

DEFAULT_TIMEOUTS_S = {"pull": 1800.0, "reproduce": 6 * 3600.0, "push": 1800.0, "git_sync": 600.0, "report": 300.0}


@dataclass(frozen=True)
class Settings:
    project: Path
    executor: str = "docker"  # docker: `make run` (a container per stage); local: `make run-local`
    venv: Path = field(default_factory=lambda: Path(sys.prefix))  # the venv make and the steps use
    cron: str = "0 2 * * *"  # nightly, 02:00 in `timezone`
    timezone: str = "UTC"
    retries: int = 3  # extra attempts of a step after a transient failure
    retry_delay_s: float = 10.0  # first wait; doubles per retry
    timeouts_s: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS_S))
    notify_urls: str = ""  # Apprise URLs, space- or comma-separated; empty = no notifications
    drift_url: str = ""  # a Prometheus /metrics URL showing cifar100_drift_detected
    drift_poll_s: float = 60.0
    drift_min_interval_s: float = 6 * 3600.0  # at most one drift-triggered run per this many seconds

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise Fail(f"{name}={raw!r} in the environment or .env is not a number: set a number of seconds") from None
    if not low <= value <= high:
        raise Fail(f"{name}={raw} in the environment or .env is out of range: use {low:g} to {high:g}")
    return value


def load(project: Path | str = ".", environ: Mapping[str, str] | None = None) -> Settings:
    """Settings for the project at `project` from the environment over its `.env`; Fail names a bad value."""
    project = Path(project).resolve()
    env = settings(project, environ)
    executor = env.get("AUTOMATION_EXECUTOR", "docker")
    if executor not in ("docker", "local"):
        raise Fail(f"AUTOMATION_EXECUTOR={executor!r} in the environment or .env: use docker or local")
    timeouts = {
        step: _number(env, f"AUTOMATION_TIMEOUT_{step.upper()}_S", default, 1, 7 * 24 * 3600)
        for step, default in DEFAULT_TIMEOUTS_S.items()
    }
    cron = env.get("AUTOMATION_CRON", "0 2 * * *")
    if len(cron.split()) != 5:
        raise Fail(f"AUTOMATION_CRON={cron!r} in the environment or .env: give 5 cron fields, e.g. '0 2 * * *'")
    return Settings(
        project=project,
        executor=executor,
        venv=Path(env.get("AUTOMATION_VENV", sys.prefix)),
        cron=cron,
        timezone=env.get("AUTOMATION_TIMEZONE", "UTC"),
        retries=int(_number(env, "AUTOMATION_RETRIES", 3, 0, 10)),
        retry_delay_s=_number(env, "AUTOMATION_RETRY_DELAY_S", 10, 0, 3600),
        timeouts_s=timeouts,
        notify_urls=env.get("AUTOMATION_NOTIFY_URLS", ""),
        drift_url=env.get("AUTOMATION_DRIFT_URL", ""),
        drift_poll_s=_number(env, "AUTOMATION_DRIFT_POLL_S", 60, 1, 86400),
        drift_min_interval_s=_number(env, "AUTOMATION_DRIFT_MIN_INTERVAL_S", 6 * 3600, 0, 30 * 86400),
    )
