"""A minimal model server speaking the serving contract's metrics, for the monitoring tests.

It stands in for serve/app.py (the `serve` engineer's) until that merges: POST /predict takes
a JSON batch {"images": uint8 (N, 32, 32, 3)}, runs the trained ServingModel with its
embedding and feeds serve/drift.py's DriftMonitor, and GET /metrics exposes
cifar100_drift_score, cifar100_drift_detected, cifar100_requests_total{route,status} and
cifar100_request_latency_seconds{route}. Settings from the environment: DRIFT_APP_MODEL (a
models/ folder), DRIFT_APP_PROFILE (reference_profile.json), DRIFT_APP_WINDOW (images).

`launch_server` starts it as a real uvicorn process; tests take it from here, so pointing
them at the real server is a change of that one import.
"""

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from tests.support.servers import ROOT, Server, free_port, launch, wait_ready


def create_app():
    import torch
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    from serve.drift import DriftMonitor
    from stages.profile import serving_model

    serving, _ = serving_model(Path(os.environ["DRIFT_APP_MODEL"]))
    monitor = DriftMonitor.from_profile(os.environ["DRIFT_APP_PROFILE"], window=int(os.environ["DRIFT_APP_WINDOW"]))
    reg = CollectorRegistry()
    score = Gauge("cifar100_drift_score", "drift score of the input window", registry=reg)
    detected = Gauge("cifar100_drift_detected", "1 when the input window drifted", registry=reg)
    requests = Counter("cifar100_requests_total", "requests", ["route", "status"], registry=reg)
    latency = Histogram("cifar100_request_latency_seconds", "latency", ["route"], registry=reg)
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(request: Request):
        began = time.perf_counter()
        try:
            images = np.asarray((await request.json())["images"], dtype=np.uint8)
            with torch.inference_mode():
                probs, emb = serving.forward_with_embedding(torch.from_numpy(images))
            monitor.observe(images, probs.numpy(), emb.numpy())
            status = monitor.status()
            score.set(status.score)
            detected.set(int(status.drifted))
            code, body = 200, {"classes": probs.argmax(dim=1).tolist(), "drifted": status.drifted}
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            code, body = 400, {"detail": str(exc)}
        requests.labels("/predict", str(code)).inc()
        latency.labels("/predict").observe(time.perf_counter() - began)
        return JSONResponse(body, status_code=code)

    @app.get("/metrics")
    def metrics():
        return Response(generate_latest(reg), media_type=CONTENT_TYPE_LATEST)

    return app


def launch_server(workdir: Path, model_dir: Path, profile: Path, window: int) -> tuple[Server, callable]:
    """The server on a free port, ready; and post(images uint8 (N, 32, 32, 3)) -> response JSON."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "tests.support.drift_app:create_app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    env = {
        "PYTHONPATH": str(ROOT),
        "DRIFT_APP_MODEL": str(model_dir),
        "DRIFT_APP_PROFILE": str(profile),
        "DRIFT_APP_WINDOW": str(window),
    }
    server = launch("drift-app", cmd, workdir, env, f"http://127.0.0.1:{port}")
    wait_ready(server, "/health")

    def post(images: np.ndarray) -> dict:
        data = json.dumps({"images": images.tolist()}).encode()
        req = urllib.request.Request(server.url + "/predict", data, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    return server, post
