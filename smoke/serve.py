"""Serve a smoke model end to end: pipeline in a sandbox, server on it, alias moved.

1. smoke/sandbox.py's smoke pipeline (`dvc repro`, synthetic data, small net)
   registers v1 as champion in the sandbox's own MLflow store.
2. `python -m serve` starts on that store (127.0.0.1, a free port, 1 s poll);
   real PNG files (test images written to disk) are posted; the answers are
   compared with MLflow's pyfunc model on the same decoded pixels.
3. The pipeline reruns with another train seed and one epoch (a new version,
   quickly), `champion` is moved to it, and the server must follow; bad inputs must get 4xx.
Prints one JSON line {"served_version", "reloaded_to", "predictions_match_pyfunc",
"bad_inputs_4xx"}; exits 1 when a check fails. The project is never touched.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from smoke.sandbox import ROOT, SMOKE_OVERRIDES, make_sandbox, merge, repro, scratch
from smoke.servers import Server, free_port, launch

POLL_S = 1.0
WAIT_S = 180  # bound on every wait for the server


def _start(sandbox: Path, port: int) -> Server:
    """The server on the sandbox's store, run from the project (cwd first on sys.path); log in the sandbox."""
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{sandbox / 'mlflow.db'}", "SERVE_PORT": str(port)}
    env["SERVE_POLL_INTERVAL_S"] = str(POLL_S)
    cmd = [sys.executable, "-m", "serve", "--params", str(sandbox / "params.yaml")]
    return launch("serve", cmd, sandbox, env, f"http://127.0.0.1:{port}", cwd=ROOT)


def _wait_version(url: str, proc: subprocess.Popen, version: str | None) -> str:
    """Poll /ready until it serves `version` (any, when None); bounded by WAIT_S."""
    import httpx

    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            got = httpx.get(url + "/ready", timeout=5)
            if got.status_code == 200 and version in (None, got.json()["version"]):
                return got.json()["version"]
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server did not serve version {version or 'any'} within {WAIT_S} s")


def _write_pngs(sandbox: Path, count: int) -> list[Path]:
    from PIL import Image

    images = np.load(sandbox / "data" / "processed" / "test_x.npy")[:count].transpose(0, 2, 3, 1)  # NCHW -> NHWC
    (sandbox / "pngs").mkdir()
    paths = [sandbox / "pngs" / f"test_{i:03d}.png" for i in range(len(images))]
    for img, path in zip(images, paths):
        Image.fromarray(img).save(path)
    return paths


def _predict_matches(url: str, sandbox: Path, pngs: list[Path], version: str) -> bool:
    """Server's top-5 on the PNG files == MLflow pyfunc's on the same pixels."""
    import httpx
    import mlflow
    from PIL import Image

    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in pngs]
    answer = httpx.post(url + "/predict", files=files, timeout=60).json()
    mlflow.set_tracking_uri(f"sqlite:///{sandbox / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{sandbox / 'mlflow.db'}")
    name = answer["model"]
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in pngs])
    probs = mlflow.pyfunc.load_model(f"models:/{name}/{version}").predict(pixels)
    if answer["version"] != version:
        return False
    for pred, row in zip(answer["predictions"], probs):
        got = [t["probability"] for t in pred["top_k"]]
        if not np.allclose(got, np.sort(row)[::-1][: len(got)], atol=1e-5):
            return False
    return True


def _bad_inputs(url: str, png: bytes) -> int:
    import httpx

    cases: list[dict[str, Any]] = [
        {"files": {"files": ("a.png", b"not an image", "image/png")}},
        {"files": {"files": ("t.png", png[: len(png) // 2], "image/png")}},
        {"content": b"", "headers": {"content-type": "image/png"}},
        {"json": {"images": [[1, 2, 3]]}},
        {"json": {"images": np.full((1, 32, 32, 3), 0.5).tolist()}},
    ]
    return sum(400 <= httpx.post(url + "/predict", timeout=60, **c).status_code < 500 for c in cases)


def smoke(sandbox: Path, epochs: int) -> dict:
    from mlflow import MlflowClient

    from stages.lib import params, registry

    first = repro(make_sandbox(sandbox, merge(SMOKE_OVERRIDES, {"recipes": {"fast": {"epochs": epochs}}})))
    port = free_port()
    server = _start(sandbox, port)
    url, proc = server.url, server.proc
    try:
        served = _wait_version(url, proc, str(first["version"]))
        pngs = _write_pngs(sandbox, 16)
        match = _predict_matches(url, sandbox, pngs, served)
        raw = params.read_yaml(sandbox / "params.yaml")
        raw["train"]["seed"] += 1  # another training run: a new version
        raw["recipes"]["fast"]["epochs"] = 1  # its quality does not matter here
        from ruamel.yaml import YAML

        with open(sandbox / "params.yaml", "w") as f:
            YAML(typ="safe", pure=True).dump(raw, f)
        second = repro(sandbox)
        uri = f"sqlite:///{sandbox / 'mlflow.db'}"
        registry.move_champion(MlflowClient(uri, uri), second["model"], str(second["version"]))
        reloaded = _wait_version(url, proc, str(second["version"]))
        match = match and _predict_matches(url, sandbox, pngs, reloaded)
        bad = _bad_inputs(url, pngs[0].read_bytes())
    finally:
        server.stop()
    return {"served_version": served, "reloaded_to": reloaded, "predictions_match_pyfunc": match, "bad_inputs_4xx": bad}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the sandbox for inspection")
    ap.add_argument("--epochs", type=int, default=SMOKE_OVERRIDES["recipes"]["fast"]["epochs"])
    args = ap.parse_args()
    with scratch("serve-", keep=args.keep) as sandbox:  # SIGTERM too: `finally` stops the server
        result = smoke(sandbox, args.epochs)
    print(json.dumps(result))
    ok = result["predictions_match_pyfunc"] and result["reloaded_to"] != result["served_version"]
    return 0 if ok and result["bad_inputs_4xx"] == 5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
