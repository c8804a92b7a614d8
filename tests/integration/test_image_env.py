"""Each image holds exactly its layers of the dependency lock: the stage and dvc-runner images
env/stages.lock, the serve image env/stages.lock + env/serve.lock."""

import subprocess

import pytest

from tests.conftest import ROOT
from tests.support.envlock import differences, layer_pins, pins

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
    """kind -> tag of the images `make build build-serve` builds on `base_image` (built if missing)."""
    _make(base_image, "build", "build-serve")
    return {kind: _make(base_image, f"print-{kind}-image") for kind in ("stage", "runner", "serve")}


@pytest.mark.parametrize(
    ("kind", "layers"), [("stage", ("stages",)), ("runner", ("stages",)), ("serve", ("stages", "serve"))]
)
def test_image_installs_exactly_its_layers(images, kind, layers):
    freeze = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", images[kind], "python", "-m", "pip", "freeze", "--all"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert freeze.returncode == 0, freeze.stderr
    found = differences(layer_pins(ROOT / "env", *layers), pins(freeze.stdout))
    files = " + ".join(f"env/{layer}.lock" for layer in layers)
    assert found == [], f"{images[kind]} differs from {files} (rebuild with `make build`):\n" + "\n".join(found)
