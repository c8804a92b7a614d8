"""Automation settings (AUTOMATION_*), from the environment or `.env` (the shell wins), never from
params.yaml: no stage reads them, so changing the schedule never reruns a stage. See .env.example."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import SettingsConfigDict

from ops.common import Fail
from runner.envsettings import EnvSettings
from stages.lib.cli import PipelineError

PREFIX = "AUTOMATION_"
DEFAULT_TIMEOUTS_S = {"pull": 1800.0, "reproduce": 6 * 3600.0, "push": 1800.0, "git_sync": 600.0, "report": 300.0}
DAY_S = 24 * 3600


def _line(info: ValidationInfo, shown: str, why: str) -> PydanticCustomError:
    """A whole one-line message (EnvSettings.explain prints it as it is)."""
    return PydanticCustomError("setting", "{line}", {"line": f"{PREFIX}{info.field_name}".upper() + f"={shown}{why}"})


def _within(low: float, high: float) -> BeforeValidator:
    def check(raw: object, info: ValidationInfo) -> float:
        try:
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            why = " in the environment or .env is not a number: set a number of seconds"
            raise _line(info, repr(raw), why) from None
        if not low <= value <= high:
            raise _line(info, str(raw), f" in the environment or .env is out of range: use {low:g} to {high:g}")
        return value

    return BeforeValidator(check)


Retries = Annotated[int, _within(0, 10)]
RetryDelay = Annotated[float, _within(0, 3600)]
Timeout = Annotated[float, _within(1, 7 * DAY_S)]
Poll = Annotated[float, _within(1, DAY_S)]
Interval = Annotated[float, _within(0, 30 * DAY_S)]
AttemptTimeout = Annotated[float, _within(10, DAY_S)]
Port = Annotated[int, _within(1, 65535)]


class AutomationSettings(EnvSettings):
    """AUTOMATION_<FIELD>; `project` is given, not read from the environment."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=".env")

    project: Path
    executor: Literal["docker", "local"] = "docker"  # docker: `make run` (container per stage); local: `make run-local`
    venv: Path = Field(default_factory=lambda: Path(sys.prefix))  # the venv make and the steps use
    cron: str = "0 2 * * *"  # nightly, 02:00 in `timezone`
    timezone: str = "UTC"
    retries: Retries = 3  # extra attempts of a step after a transient failure
    retry_delay_s: RetryDelay = 10.0  # first wait; doubles per retry
    timeout_pull_s: Timeout = DEFAULT_TIMEOUTS_S["pull"]
    timeout_reproduce_s: Timeout = DEFAULT_TIMEOUTS_S["reproduce"]
    timeout_push_s: Timeout = DEFAULT_TIMEOUTS_S["push"]
    timeout_git_sync_s: Timeout = DEFAULT_TIMEOUTS_S["git_sync"]
    timeout_report_s: Timeout = DEFAULT_TIMEOUTS_S["report"]
    remote_timeout_s: AttemptTimeout = 120.0  # one attempt of pull/push: a hung remote costs this, then a retry
    notify_urls: str = ""  # Apprise URLs, space- or comma-separated; empty = no notifications
    drift_url: str = ""  # a Prometheus /metrics URL showing cifar100_drift_detected
    drift_poll_s: Poll = 60.0
    drift_min_interval_s: Interval = 6 * 3600.0  # at most one drift-triggered run per this many seconds
    guardrail_port: Port = 9097  # the guardrail receiver (`make guardrail`) on 127.0.0.1; monitoring/alertmanager.yml
    guardrail_bake_s: Interval = DAY_S  # a champion alert this soon after its version was registered rolls it back
    guardrail_min_interval_s: Interval = 1800.0  # at most one guardrail action per variant per this many seconds

    @field_validator("executor", mode="before")
    @classmethod
    def _executor(cls, raw: object, info: ValidationInfo) -> object:
        if raw not in ("docker", "local"):
            raise _line(info, repr(raw), " in the environment or .env: use docker or local")
        return raw

    @field_validator("cron")
    @classmethod
    def _cron(cls, raw: str, info: ValidationInfo) -> str:
        if len(raw.split()) != 5:
            raise _line(info, repr(raw), " in the environment or .env: give 5 cron fields, e.g. '0 2 * * *'")
        return raw

    @property
    def timeouts_s(self) -> dict[str, float]:
        return {step: getattr(self, f"timeout_{step}_s") for step in DEFAULT_TIMEOUTS_S}

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


Settings = AutomationSettings  # the name flows.pipeline and flows.serve use


def load(project: Path | str = ".", environ: Mapping[str, str] | None = None) -> AutomationSettings:
    """Settings for the project at `project` from the environment over its `.env`; Fail names a bad value."""
    project = Path(project).resolve()
    try:
        return AutomationSettings.load(environ, env_file=project / ".env", project=project)
    except PipelineError as exc:
        raise Fail(str(exc)) from None
