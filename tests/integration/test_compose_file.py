"""docker-compose.yml through the real compose (`docker compose` or Debian's docker-compose v1,
whichever the Makefile picks): it renders with the environment the Makefile exports, and a
variable without which it makes no sense, missing, is named instead of yielding an empty image
name or uid."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import ROOT

GUARDED = ("STAGE_IMAGE", "SERVE_IMAGE", "RUNNER_IMAGE", "PROJECT_DIR", "HOST_UID", "HOST_GID", "DOCKER_GID")

pytestmark = pytest.mark.skipif(
    not (shutil.which("docker-compose") or shutil.which("docker")), reason="neither docker compose nor docker-compose"
)


def compose_config(*overrides: str) -> subprocess.CompletedProcess[str]:
    """`$(COMPOSE) config -q` run by make, so with exactly the variables its recipes export."""
    cmd = ["make", "-s", "--no-print-directory", "-C", str(ROOT), "STAMP=", *overrides]
    cmd += ["--eval=compose-config: ; @$(COMPOSE) -f docker-compose.yml config -q", "compose-config"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_the_makefiles_environment_renders_the_file():
    done = compose_config()
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", GUARDED)
def test_a_missing_variable_is_named(name):
    done = compose_config(f"{name}=")  # make exports it empty: compose's :? treats empty as missing
    assert done.returncode != 0
    assert name in done.stderr and "run through make" in done.stderr, done.stderr
