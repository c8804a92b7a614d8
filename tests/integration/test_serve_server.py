"""The server as users run it: `python -m serve` (uvicorn) on 127.0.0.1, real HTTP clients,
a real MLflow registry. Predictions equal the pyfunc model's; the alias moves under a
running client loop with no failed request; `make rollback`; bad inputs batched with good ones."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from mlflow import MlflowClient

from smoke import serving
from stages.lib import registry
from tests.support.servers import ROOT, free_port, launch, wait_ready

POLL_S = 0.5
LOOP_LIMIT_S = 120  # the client loop's bound


@pytest.fixture(scope="module")
def server(serve_template, tmp_path_factory):
    """One server for the module (starting one takes ~20 s on 2 busy cores); the tests that
    move the alias put it back."""
    template, v1, v2 = serve_template
    root = serving.copy_store(template, tmp_path_factory.mktemp("served"))
    port = free_port()
    env = {
        "MLFLOW_TRACKING_URI": serving.store_uri(root),
        "SERVE_PORT": str(port),
        "SERVE_POLL_INTERVAL_S": str(POLL_S),
    }
    proc = launch("serve", [sys.executable, "-m", "serve", "--params", str(root / "params.yaml")], root, env, "")
    proc.url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, "/ready")
        yield proc, root, v1, v2
    finally:
        proc.stop()


def _png(seed: int) -> bytes:
    return serving.png(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8))


def test_concurrent_png_requests_equal_pyfunc(server):
    proc, root, v1, _ = server
    images = [np.random.default_rng(s).integers(0, 256, (32, 32, 3), dtype=np.uint8) for s in range(16)]

    def ask(img):
        with httpx.Client(base_url=proc.url, timeout=30) as http:
            return http.post("/predict", files={"files": ("x.png", serving.png(img), "image/png")}).json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, images))
    expect = serving.pyfunc_probs(root, v1, np.stack(images))
    for answer, probs in zip(answers, expect):
        assert answer["version"] == v1
        top = answer["predictions"][0]["top_k"]
        assert [t["label"] for t in top] == [serving.FINE[i] for i in np.argsort(-probs)[:5]]
        assert np.allclose([t["probability"] for t in top], np.sort(probs)[::-1][:5], atol=1e-5)


def _client_loop(url: str, stop: threading.Event, seen: list) -> None:
    deadline = time.monotonic() + LOOP_LIMIT_S
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set() and time.monotonic() < deadline:
            got = http.post("/predict", files={"files": ("x.png", _png(len(seen)), "image/png")})
            seen.append((got.status_code, got.json().get("version")))


def _wait(what, limit_s: float = 60):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.1)
    return False


def test_follows_the_alias_with_no_failed_request_and_rolls_back(server):
    proc, root, v1, v2 = server
    client = MlflowClient(tracking_uri=serving.store_uri(root), registry_uri=serving.store_uri(root))
    stop, seen = threading.Event(), []
    loops = [threading.Thread(target=_client_loop, args=(proc.url, stop, seen)) for _ in range(3)]
    for t in loops:
        t.start()
    try:
        assert _wait(lambda: len(seen) >= 5)
        registry.move_champion(client, serving.NAME, v2)
        assert _wait(lambda: any(v == v2 for _, v in seen[-3:])), proc.tail()
        assert _wait(lambda: sum(v == v2 for _, v in seen) >= 10)
    finally:
        stop.set()
        for t in loops:
            t.join(timeout=60)
    assert {status for status, _ in seen} == {200}
    versions = [v for _, v in seen]
    assert versions[0] == v1 and v2 in versions
    assert set(versions) == {v1, v2}
    venv = Path(sys.executable).parent.parent
    done = subprocess.run(
        ["make", "-s", "rollback", f"VENV={venv}", "STAMP=", f"SERVE_PARAMS={root / 'params.yaml'}"],
        cwd=ROOT,
        env={**serving_env(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f'"from": "{v2}", "to": "{v1}"' in done.stdout
    ready = lambda: httpx.get(proc.url + "/ready", timeout=10).json()["version"] == v1  # noqa: E731
    assert _wait(ready, 30 * POLL_S + 30)


def serving_env(root: Path) -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, "MLFLOW_TRACKING_URI": serving.store_uri(root)}


def test_bad_inputs_get_4xx_while_good_requests_batched_with_them_succeed(server):
    proc, *_ = server
    good = {"files": {"files": ("g.png", _png(1), "image/png")}}
    truncated = _png(2)[:100]
    bad = [
        ({"files": {"files": ("x.png", b"not an image at all", "image/png")}}, 415),
        ({"files": {"files": ("t.png", truncated, "image/png")}}, 400),
        ({"content": b"", "headers": {"content-type": "image/png"}}, 400),
        ({"json": {"images": [[1, 2, 3]]}}, 422),
        ({"json": {"images": np.full((1, 32, 32, 3), 0.5).tolist()}}, 422),
        ({"content": b"\0" * (9 << 20), "headers": {"content-type": "image/png"}}, 413),
    ]
    jobs = [(good, 200)] * 8 + bad + [(good, 200)] * 8

    def send(job):
        kwargs, _ = job
        with httpx.Client(base_url=proc.url, timeout=60) as http:
            return http.post("/predict", **kwargs).status_code

    with ThreadPoolExecutor(len(jobs)) as pool:
        statuses = list(pool.map(send, jobs))
    assert statuses == [want for _, want in jobs]
    assert httpx.get(proc.url + "/health", timeout=10).status_code == 200
