"""The lock's layer files and the comparison the image tests make, on constructed inputs."""

import pytest

from tests.conftest import ROOT
from tests.support.envlock import LAYERS, differences, layer_pins, lock_pins, pins

ENV = ROOT / "env"


def test_freeze_lines_and_lock_lines_read_alike():
    lock = "ruamel-yaml==0.19.1 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # via x\nTorch==2.14.1 \\\n"
    freeze = "Ruamel.YAML==0.19.1\ntorch==2.14.1\n-e git+https://x@y#egg=cifar100\ncifar100 @ file:///p\n"
    assert pins(lock) == pins(freeze) == {"ruamel-yaml": "0.19.1", "torch": "2.14.1"}


def test_every_difference_is_named():
    lock = {"torch": "2.14.1", "numpy": "2.4.6", "mlflow": "3.17.2"}
    installed = {"torch": "2.9.0", "mlflow": "3.17.2", "extra": "1.0", "pip": "24.0"}
    assert differences(lock, installed) == [
        "extra==1.0 is installed but not in the lock",
        "numpy==2.4.6 is in the lock but not installed",
        "torch: lock 2.14.1, installed 2.9.0",
    ]
    assert differences(lock, {**lock, "setuptools": "65.0"}) == []  # a venv's own tools, when the lock has none


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_pins_every_package_with_hashes(layer):
    lock = ENV / f"{layer}.lock"
    text = lock.read_text()
    pinned = lock_pins(lock)
    blocks = [b for b in text.split("\n") if b and not b.startswith((" ", "#"))]
    assert pinned and len(blocks) == len(pinned)  # every requirement line is a pin
    assert text.count("--hash=sha256:") >= len(pinned)
    assert "--index-url" not in text and "--find-links" not in text and "file://" not in text


def test_a_package_is_in_exactly_one_layer():
    seen: dict[str, str] = {}
    for layer in LAYERS:
        for name in lock_pins(ENV / f"{layer}.lock"):
            assert name not in seen, f"{name} is in env/{seen.get(name)}.lock and env/{layer}.lock: run `make lock`"
            seen[name] = layer


@pytest.mark.parametrize(
    ("layer", "direct"),
    [
        ("stages", ("torch", "torchvision", "numpy", "mlflow", "dvc", "docker", "pydantic", "pydantic-settings")),
        ("serve", ("python-multipart", "prometheus-client")),  # fastapi, uvicorn, scipy come with mlflow
        ("automation", ("prefect", "apprise")),
        ("dev", ("pytest", "pip-tools", "ruff", "mypy", "import-linter", "mkdocs", "mkdocs-material")),
    ],
)
def test_each_direct_dependency_is_in_its_layer(layer, direct):
    pinned = lock_pins(ENV / f"{layer}.lock")
    missing = [name for name in direct if name not in pinned]
    assert not missing, f"{missing} missing from env/{layer}.lock: run `make lock`"


def test_torch_comes_from_the_stages_layer_at_the_pinned_version():
    pinned = layer_pins(ENV, *LAYERS)
    assert pinned["torch"] == "2.14.1" and pinned["torchvision"] == "0.29.1"
