"""docker-compose.yml's serve service passes every SERVE_* variable serve/settings.py reads
(SERVE_DRIFT_WINDOW was once honoured by the server and dropped by compose)."""

from __future__ import annotations

from ruamel.yaml import YAML

from serve.settings import ServeEnv
from tests.conftest import ROOT


def serve_environment() -> dict:
    compose = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
    return compose["services"]["serve"]["environment"]


def test_the_serve_service_passes_every_serve_setting():
    read = {f"SERVE_{field}".upper() for field in ServeEnv.model_fields}
    passed = {name for name in serve_environment() if name.startswith("SERVE_")}
    assert sorted(read - passed) == [], "add these to docker-compose.yml's serve environment"
    assert sorted(passed - read) == [], "serve/settings.py ServeEnv reads no such variable"


def test_the_serve_service_passes_them_through_unset():
    """A value written there would override the caller's (and params.yaml); None passes the caller's."""
    assert {k: v for k, v in serve_environment().items() if k.startswith("SERVE_") and v is not None} == {}
