"""The lock file and the comparison the image tests make, on constructed inputs."""

from tests.conftest import ROOT
from tests.support.envlock import differences, lock_pins, pins

LOCK = ROOT / "env" / "requirements.lock"


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


def test_the_lock_pins_every_direct_dependency_with_hashes():
    text = LOCK.read_text()
    pinned = lock_pins(LOCK)
    for direct in ("torch", "torchvision", "numpy", "mlflow", "dvc", "pytest", "pip-tools"):
        assert direct in pinned, f"{direct} missing from {LOCK}: run `make lock`"
    assert pinned["torch"] == "2.14.1" and pinned["torchvision"] == "0.29.1"
    blocks = [b for b in text.split("\n") if b and not b.startswith((" ", "#"))]
    assert len(blocks) == len(pinned)  # every requirement line is a pin
    assert text.count("--hash=sha256:") >= len(pinned)
    assert "--index-url" not in text and "--find-links" not in text and "file://" not in text
