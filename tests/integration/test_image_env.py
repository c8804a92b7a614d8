"""The stage and dvc-runner images hold exactly the dependency lock (env/requirements.lock)."""

import subprocess

import pytest

from tests.conftest import ROOT
from tests.support.envlock import differences, lock_pins, pins

pytestmark = pytest.mark.docker


def _make(base_image: str, *targets: str) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "-C", str(ROOT), f"BASE_IMAGE={base_image}", *targets],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def images(base_image) -> dict[str, str]:
    """kind -> tag of the images `make build` builds on `base_image` (built if missing)."""
    _make(base_image, "build")
    return {kind: _make(base_image, f"print-{kind}-image") for kind in ("stage", "runner")}


@pytest.mark.parametrize("kind", ["stage", "runner"])
def test_image_installs_exactly_the_lock(images, kind):
    freeze = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", images[kind], "python", "-m", "pip", "freeze", "--all"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert freeze.returncode == 0, freeze.stderr
    found = differences(lock_pins(ROOT / "env" / "requirements.lock"), pins(freeze.stdout))
    assert found == [], f"{images[kind]} differs from env/requirements.lock (rebuild with `make build`):\n" + "\n".join(
        found
    )
