"""Typed server settings: params.yaml's `serve:` section, then SERVE_* environment overrides.

serve/ owns the `serve:` section (ServeParams): no stage reads it, so stages/lib/params.py passes
it over and editing this file or a serve setting reruns no stage.

MLFLOW_TRACKING_URI picks the registry (default: the project's sqlite store next
to params.yaml, as the stages use); SERVE_HOST/SERVE_PORT where to listen;
SERVE_FEEDBACK_URL the feedback store (default: sqlite feedback.db next to params.yaml).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError
from pydantic.dataclasses import dataclass as typed_section
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from serve import feedback
from stages.lib import params
from stages.lib.cli import PipelineError
from stages.lib.params import Float, Int, Str

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080


@typed_section(frozen=True, config=params.SECTION)
class ServeParams:
    """params.yaml `serve:`; SERVE_* environment variables override these."""

    model: Str  # a registry alias (champion) or a version number
    max_batch_size: Annotated[Int, Field(ge=1)]  # images per forward pass across concurrent requests
    max_wait_ms: Annotated[Float, Field(ge=0)]  # how long the first request of a batch waits for company
    poll_interval_s: Annotated[Float, Field(gt=0)]  # how often the alias is checked for a new version
    top_k: Annotated[Int, Field(ge=1)]
    max_request_bytes: Annotated[Int, Field(ge=1)]  # larger bodies are refused with 413
    max_image_pixels: Annotated[Int, Field(ge=1)]  # width x height; larger images are refused with 413
    max_images: Annotated[Int, Field(ge=1)]  # images in one request; more is 413
    max_request_pixels: Annotated[Int, Field(ge=1)]  # decoded pixels summed over a request's images; more is 413
    body_timeout_s: Annotated[Float, Field(gt=0)]  # the whole body must arrive within this (408 after)
    idle_timeout_s: Annotated[Float, Field(gt=0)]  # idle keep-alive, and the deadline for a request's head
    max_header_bytes: Annotated[Int, Field(ge=1024)]  # request line + headers; larger closes the connection
    device: Literal["auto", "cpu", "cuda"]
    drift_window: Annotated[Int, Field(ge=10)]  # recent images the drift monitor compares with the reference
    mode: Literal["single", "ab", "shadow"]  # single | ab (split by client) | shadow (copies)
    challenger_share: Annotated[Float, Field(ge=0, le=100)]  # % of clients the challenger answers in ab mode
    registry_timeout_s: Annotated[Int, Field(ge=1)]  # one registry request's bound while following (no retries)


def serve_params(raw: Any, where: str = "params.yaml") -> ServeParams:
    """The `serve:` section of a loaded params file, checked (one line naming file, key and value)."""
    return params.parse_as(ServeParams, params.section(raw, "serve", where), where, "serve")


@dataclass(frozen=True)
class Settings:
    tracking_uri: str
    model_name: str  # the registered model (params register.model_name)
    model: str  # an alias to follow (champion) or a version number to pin
    # The rest: params.yaml's `serve:` (the one place of their defaults), then ServeEnv's overrides.
    max_batch_size: int
    max_wait_ms: float
    poll_interval_s: float
    top_k: int
    max_request_bytes: int
    max_image_pixels: int
    max_images: int
    max_request_pixels: int
    body_timeout_s: float
    idle_timeout_s: float
    max_header_bytes: int
    device: str
    drift_window: int  # images in the drift monitor's rolling window (bench/drift.py measured 500)
    host: str
    port: int
    torch_threads: int | None
    feedback_url: str  # the feedback store (serve/feedback.py): SQLAlchemy URL, default sqlite feedback.db
    mode: str = "single"  # single | ab | shadow (docs/serving.md, A/B and shadow)
    challenger_share: float = 0.0  # %, overridden at run time by the registered model tag serve.challenger_share
    registry_timeout_s: int = 5  # MLflow HTTP timeout of the follower's requests (s); a poll never retries

    @property
    def pinned(self) -> bool:
        """A version number never moves, so it is not polled."""
        return self.model.isdigit()


class ServeEnv(BaseSettings):
    """The SERVE_* environment variables: each, when set and non-empty, overrides params.yaml's
    `serve:` value (None: not set, params.yaml's stands). HOST, PORT and TORCH_THREADS exist here
    only, so their defaults are here. docker-compose.yml's serve service passes every one
    (tests/unit/test_compose_env.py)."""

    model_config = SettingsConfigDict(env_prefix="SERVE_", env_ignore_empty=True, extra="ignore", frozen=True)

    model: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_batch_size: int | None = None
    max_wait_ms: float | None = None
    poll_interval_s: float | None = None
    device: str | None = None
    drift_window: int | None = None
    max_request_bytes: int | None = None
    max_images: int | None = None
    max_request_pixels: int | None = None
    body_timeout_s: float | None = None
    idle_timeout_s: float | None = None
    torch_threads: int | None = None  # CPU threads for forward passes (None: all cores but one)
    feedback_url: str | None = None  # SQLAlchemy URL of the feedback store (None: sqlite feedback.db by params.yaml)
    mode: str | None = None
    challenger_share: float | None = None
    registry_timeout_s: int | None = None

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> ServeEnv:
        """From environ through pydantic-settings' own env source (prefix, case, empty = unset).
        PipelineError: one line naming the variable, the value and the fix."""
        source = EnvSettingsSource(cls)
        source.env_vars = parse_env_vars(environ, False, True, None)
        try:
            return cls.model_validate(source())
        except ValidationError as exc:
            err = exc.errors()[0]
            var, kind = f"SERVE_{err['loc'][0]}".upper(), err["type"].split("_")[0]
            raise PipelineError(f"{var}={err['input']!r} is not a valid {kind}; unset it or fix the value") from None


def _check(s: Settings) -> Settings:
    if not s.model or not (s.model.isdigit() or s.model.replace("_", "").replace("-", "").isalnum()):
        raise PipelineError(f"serve model {s.model!r}: give an alias such as champion or a version number")
    if s.device not in ("auto", "cpu", "cuda"):
        raise PipelineError(f"SERVE_DEVICE={s.device!r}: use auto, cpu or cuda")
    positive = ("max_request_bytes", "max_images", "max_request_pixels", "body_timeout_s", "idle_timeout_s")
    for key in ("port", "max_batch_size", "poll_interval_s", "drift_window", *positive):
        if getattr(s, key) <= 0:
            raise PipelineError(f"serve {key} must be > 0, got {getattr(s, key)!r}")
    if s.torch_threads is not None and s.torch_threads <= 0:
        raise PipelineError(f"SERVE_TORCH_THREADS={s.torch_threads!r}: give a number of threads > 0, or unset it")
    if s.mode not in ("single", "ab", "shadow"):
        raise PipelineError(f"SERVE_MODE={s.mode!r}: use single, ab or shadow")
    if not 0 <= s.challenger_share <= 100:
        raise PipelineError(f"SERVE_CHALLENGER_SHARE={s.challenger_share!r}: give a share in % from 0 to 100")
    if s.registry_timeout_s <= 0:
        raise PipelineError(f"SERVE_REGISTRY_TIMEOUT_S={s.registry_timeout_s!r}: give seconds > 0")
    if s.max_wait_ms < 0:
        raise PipelineError(f"serve max_wait_ms must be >= 0, got {s.max_wait_ms!r}")
    return s


def load(params_path: str | Path = "params.yaml", env: Mapping[str, str] | None = None) -> Settings:
    """Settings from params.yaml (`serve:` checked here, the rest by stages.lib.params) and the environment."""
    from stages.lib import tracking

    env = os.environ if env is None else env
    raw = params.read_yaml(params_path)
    cfg = params.parse(raw, str(params_path))
    values = dataclasses.asdict(serve_params(raw, str(params_path)))
    values["tracking_uri"] = env.get("MLFLOW_TRACKING_URI") or tracking.local_store(Path(params_path).parent)[0]
    values["model_name"] = cfg.register.model_name
    values["feedback_url"] = feedback.default_url(Path(params_path).parent)
    overrides = ServeEnv.read(env).model_dump()  # None: not set, so params.yaml's value stands
    values.update({k: v for k, v in overrides.items() if v is not None or k not in values})
    return _check(Settings(**values))
