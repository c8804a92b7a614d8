"""`make ab-report` / `make ab-promote` settings: AB_* environment variables (or .env), typed.

They live in the environment, not params.yaml: a new params.yaml section would have to be
declared to the stages' params reader (stages/, frozen while the baseline trains).
The feedback store is the server's: SERVE_FEEDBACK_URL, else feedback.db next to params.yaml.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ops.abstats import AbConfig
from proc.run import Fail
from serve import feedback


class AbSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AB_", env_ignore_empty=True, extra="ignore", frozen=True)

    alpha: float = Field(0.05, gt=0, lt=1)  # chance of any wrong verdict when the variants are equal
    tau: float = Field(0.02, gt=0, lt=1)  # mSPRT mixture sd: the top-1 difference the test is tuned to
    min_per_arm: int = Field(100, ge=10)  # labels per variant before the test counts
    mde: float = Field(0.02, gt=0, lt=1)  # smallest top-1 difference worth finding (sample size)
    power: float = Field(0.8, gt=0, lt=1)  # wanted chance of finding it (sample size)
    since: float | None = None  # unix seconds: only labels given at or after this count
    out: Path = Path("reports/ab")  # report.json and accuracy.png

    def config(self) -> AbConfig:
        return AbConfig(self.alpha, self.tau, self.min_per_arm, self.mde, self.power)


def load(environ: Mapping[str, str] | None = None) -> AbSettings:
    """From the environment; Fail naming the variable, the value and the fix."""
    environ = os.environ if environ is None else environ
    values = {k[3:].lower(): v for k, v in environ.items() if k.startswith("AB_") and v}
    try:
        return AbSettings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        var = f"AB_{err['loc'][0]}".upper()
        raise Fail(f"{var}={err['input']!r}: {err['msg']}; fix or unset it") from None


def store_url(params_path: Path, environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get("SERVE_FEEDBACK_URL") or feedback.default_url(params_path.parent)
