"""Remote settings (`make dagshub/push/pull/git-sync/mlflow-check`, the hooks, notifications):
the REMOTE_VARS of runner/credentials.py, typed, from the environment over `.env` (a non-empty
shell value wins; see .env.example), as the Makefile reads them.

With DAGSHUB_OWNER and no MLFLOW_TRACKING_URI, MLflow goes to the DagsHub repo's server, the
token as password (the Makefile derives the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic_settings import SettingsConfigDict

from ops.common import Fail
from runner.envsettings import EnvSettings
from stages.lib.cli import PipelineError


class RemoteSettings(EnvSettings):
    """One field per runner.credentials.REMOTE_VARS name (tests/unit/test_credentials.py checks)."""

    model_config = SettingsConfigDict(env_file=".env")

    dagshub_owner: str | None = None
    dagshub_repo: str | None = None
    dagshub_user: str | None = None  # when the token's user is not the owner (an organisation's repo)
    dagshub_token: str | None = None
    dvc_remote_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    aws_endpoint_url: str | None = None
    aws_default_region: str | None = None
    mlflow_s3_endpoint_url: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_tracking_username: str | None = None
    mlflow_tracking_password: str | None = None
    mlflow_tracking_token: str | None = None
    remote_attempts: int | None = None  # push, pull, git-sync; ops.retry: default 3, kept within 1 to 10
    remote_retry_delay_s: float | None = None  # first wait in s, doubling; ops.retry: default 2, at most 60

    def environ(self) -> dict[str, str]:
        """The settings that are set, as environment variables (what `make` exports), MLflow's
        derived from DagsHub's when MLFLOW_TRACKING_URI is not set."""
        found = {self.env_name(k): str(v) for k, v in self.model_dump().items() if v is not None}
        if self.dagshub_owner and not self.mlflow_tracking_uri:
            found["MLFLOW_TRACKING_URI"] = f"https://dagshub.com/{self.dagshub_owner}/{self.dagshub_repo or ''}.mlflow"
            found["MLFLOW_TRACKING_USERNAME"] = self.dagshub_user or self.dagshub_owner
            found["MLFLOW_TRACKING_PASSWORD"] = self.dagshub_token or ""
        return found


def settings(root: Path = Path("."), environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The remote settings of the project at root, from environ (None: os.environ) over root/.env,
    as environment variables. Fail: one line naming a bad value."""
    try:
        return RemoteSettings.load(environ, env_file=root / ".env").environ()
    except PipelineError as exc:
        raise Fail(str(exc)) from None
