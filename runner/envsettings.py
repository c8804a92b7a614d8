"""The base of every package's environment settings (runner's, ops', flows'): a pydantic-settings
class read from a given mapping (default os.environ) and, where `env_file` is set, a `.env` read
as `make -include .env` reads it. A name set to an empty value counts as unset, so a non-empty
shell value wins over `.env` and an empty one falls back to it, as in the Makefile.

A bad value is one line naming the variable, the value and the fix (`EnvSettings.load`).
Here, in runner/, the lowest layer that runner, ops and flows all import (pyproject's layers).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from runner.credentials import read_env_file
from stages.lib.cli import PipelineError

T = TypeVar("T", bound="EnvSettings")
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("environ", default=None)


class MakeDotEnv(DotEnvSettingsSource):
    """pydantic-settings' `.env` source with make's reading of the file, not python-dotenv's
    (which unquotes, expands ${VAR} and rejects `:=`): the Makefile and Python agree."""

    def _read_env_file(self, file_path: Path) -> Mapping[str, str | None]:
        return parse_env_vars(read_env_file(file_path), self.case_sensitive, self.env_ignore_empty, None)


class EnvSettings(BaseSettings):
    """Settings from the environment over `.env` (subclasses set env_prefix, env_file)."""

    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get()
        if environ is not None and isinstance(env_settings, EnvSettingsSource):
            env_settings.env_vars = parse_env_vars(environ, False, True, None)
        env_file = dotenv_settings.env_file if isinstance(dotenv_settings, DotEnvSettingsSource) else None
        return init_settings, env_settings, MakeDotEnv(settings_cls, env_file=env_file)

    @classmethod
    def env_name(cls, field: str) -> str:
        return (str(cls.model_config.get("env_prefix") or "") + field).upper()

    @classmethod
    def load(cls: type[T], environ: Mapping[str, str] | None = None, env_file: Path | None = None, **init: Any) -> T:
        """Read from environ (None: os.environ) over env_file (None: the class's own, if any);
        init values (not environment variables) come first. PipelineError: one line per bad value."""
        token = _ENVIRON.set(environ)
        try:
            if env_file is None:
                return cls(**init)
            return cls(_env_file=env_file, **init)
        except ValidationError as exc:
            raise PipelineError(cls.explain(exc)) from None
        finally:
            _ENVIRON.reset(token)

    @classmethod
    def explain(cls, exc: ValidationError) -> str:
        """The first error as `NAME='value' in the environment or .env: what is wrong`."""
        err = exc.errors()[0]
        if err["type"] == "setting":  # a validator's own whole line
            return err["msg"]
        field = str(err["loc"][0]) if err["loc"] else ""
        name = cls.env_name(field) if field in cls.model_fields else field
        return f"{name}={err.get('input')!r} in the environment or .env: {err['msg'].lower()}; fix it or unset it"
