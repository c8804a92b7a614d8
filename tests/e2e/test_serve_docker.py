"""`make serve EXECUTOR=docker`: the server in the stage image (compose's serve service)
on a real registry inside the project, answering a real PNG over HTTP."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from smoke import serving
from tests.support.servers import ROOT, free_port, launch, wait_ready

pytestmark = pytest.mark.docker


@pytest.fixture
def registry_in_project():
    """The registry must lie under the project: the container sees only the project mount."""
    (ROOT / ".smoke").mkdir(exist_ok=True)
    store = Path(tempfile.mkdtemp(prefix="serve-docker-", dir=ROOT / ".smoke"))
    try:
        yield store
    finally:
        shutil.rmtree(store, ignore_errors=True)


def test_make_serve_in_docker_answers_a_png(registry_in_project, base_image):
    store = registry_in_project
    version = serving.register(store, seed=1)
    shutil.copy2(ROOT / "params.yaml", store / "params.yaml")
    port = free_port()
    venv = Path(sys.executable).parent.parent
    cmd = ["make", "-C", str(ROOT), "serve", "EXECUTOR=docker", f"VENV={venv}", "STAMP=", f"BASE_IMAGE={base_image}"]
    env = {
        "MLFLOW_TRACKING_URI": serving.store_uri(store),
        "SERVE_PORT": str(port),
        "SERVE_PARAMS": str(store / "params.yaml"),
    }
    server = launch("serve-docker", cmd, store, env, f"http://127.0.0.1:{port}")
    try:
        wait_ready(server, "/ready")
        png = serving.png(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
        got = httpx.post(server.url + "/predict", files={"files": ("x.png", png, "image/png")}, timeout=60)
        assert got.status_code == 200, got.text
        assert got.json()["version"] == version and len(got.json()["predictions"][0]["top_k"]) == 5
        assert httpx.post(server.url + "/predict", content=b"nope", timeout=60).status_code == 415
    finally:
        server.stop()
        # compose v1 `run` may leave the container when its client is signalled: remove ours by name.
        subprocess.run(["docker", "rm", "-f", f"cifar100-serve-{port}"], capture_output=True, timeout=60)
