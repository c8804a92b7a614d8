"""The FastAPI app: POST /predict, GET /health, /ready, /metrics, and FastAPI's /docs.

Bad input gets a 4xx naming the problem before it reaches a batch, so it never
affects the other requests batched with it.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import asynccontextmanager
from functools import partial

import numpy as np
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serve import contract, errors
from serve.batcher import MicroBatcher
from serve.images import BadInput, read_images
from serve.limits import CLIENT_GONE, GONE_KEY, Bounds
from serve.metrics import Metrics
from serve.model import LoadedModel
from serve.reload import ModelHolder
from serve.settings import Settings

log = logging.getLogger("serve")
ROUTES = ("/predict", "/health", "/ready", "/metrics", "/docs", "/openapi.json")


def describe(model: LoadedModel, probs: np.ndarray, k: int) -> dict:
    """One image's answer: top-k fine labels with their superclass, and the top superclass."""
    top = np.argsort(-probs, kind="stable")[:k]
    coarse = probs @ model.coarse_matrix
    best = int(coarse.argmax())
    return {
        "top_k": [
            {
                "label": model.fine_names[i],
                "coarse": model.coarse_names[model.fine_to_coarse[i]],
                "probability": float(probs[i]),
            }
            for i in top.tolist()
        ],
        "coarse": {"label": model.coarse_names[best], "probability": float(coarse[best])},
    }


def set_torch_threads(device: str, wanted: int | None = None) -> None:
    """CPU forward passes use all cores but one (SERVE_TORCH_THREADS, `wanted`, to choose): the event
    loop that reads requests needs a core of its own, and idle OpenMP threads spin on theirs."""
    import torch

    if wanted:
        torch.set_num_threads(wanted)
    elif device == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - 1))


def _forward(holder: ModelHolder, metrics: Metrics):
    def run_batch(images: np.ndarray) -> list:
        model = holder.current  # held for the whole batch: a swap meanwhile does not touch it
        if model is None:  # /predict answers 503 before submitting, and a loaded model is only swapped
            raise RuntimeError("serve: a batch reached the forward thread before any model was loaded")
        probs, emb = model.predict(images)
        metrics.predictions(probs, model.fine_names)
        if model.monitor is not None:
            try:
                model.monitor.observe(images, probs, emb)
                metrics.drift(model.monitor.status())
            except Exception:  # monitoring must never fail a prediction
                log.exception("serve: drift monitor failed on a batch")
        return [(model, row) for row in probs]

    return run_batch


class _Count:
    """Request count and latency by route and status (plain ASGI: BaseHTTPMiddleware costs ~1 ms a request)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = scope["path"] if scope["path"] in ROUTES else "other"
        start, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - start)
            code = CLIENT_GONE if scope.get(GONE_KEY) else str(status[0])
            self.metrics.requests.labels(route=route, status=code).inc()


def _predict_route(app: FastAPI, settings: Settings, holder: ModelHolder, batcher: MicroBatcher) -> None:
    @app.post("/predict")
    async def predict(request: Request, k: int | None = None) -> JSONResponse:
        """Top-k fine labels (with superclass) and the top superclass for each image."""
        model = holder.current
        if model is None:
            raise HTTPException(503, f"no model loaded yet ({holder.last_error or 'loading'})")
        k = settings.top_k if k is None else k
        if not 1 <= k <= len(model.fine_names):
            raise HTTPException(422, f"k={k}: must be 1..{len(model.fine_names)}")
        batcher.arriving += 1
        try:
            images = await read_images(request, settings)
        except BadInput as exc:
            raise HTTPException(exc.status, exc.message) from None
        finally:
            batcher.arriving -= 1
        results = await batcher.submit(images)
        used = results[0][0]
        answers = [describe(m, row, k) for m, row in results]
        # A JSONResponse directly: the answer is plain JSON types, FastAPI's encoder pass is not needed.
        return JSONResponse({"model": used.name, "version": used.version, "alias": used.alias, "predictions": answers})


def _status_routes(app: FastAPI, holder: ModelHolder, metrics: Metrics) -> None:
    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        model = holder.current
        if model is None:
            why = f"no model loaded yet ({holder.last_error or 'loading'})"
            return errors.error_response(request.scope, 503, why, extra={"ready": False, "error": holder.last_error})
        body = {"ready": True, "model": model.name, "version": model.version, "alias": model.alias}
        return JSONResponse({**body, "device": model.device, "last_error": holder.last_error})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings, holder: ModelHolder | None = None, follow: bool = True) -> FastAPI:
    """The app; `follow` starts the thread that loads the model and follows the alias."""
    metrics = holder.metrics if holder else Metrics()
    holder = holder or ModelHolder(settings, metrics)
    threads = partial(set_torch_threads, holder.device, settings.torch_threads)
    batcher = MicroBatcher(_forward(holder, metrics), settings.max_batch_size, settings.max_wait_ms / 1000, threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if follow:
            holder.start()
        batcher.start()
        yield
        await batcher.stop()
        holder.stop()

    app = FastAPI(title="CIFAR-100 classifier", version="1", lifespan=lifespan)
    app.state.holder, app.state.metrics, app.state.batcher = holder, metrics, batcher

    app.add_middleware(Bounds, max_bytes=settings.max_request_bytes, body_timeout_s=settings.body_timeout_s)
    app.add_middleware(_Count, metrics=metrics)  # outside Bounds: it counts what Bounds answers
    errors.install(app)
    contract.document(app, settings)

    _predict_route(app, settings, holder, batcher)
    _status_routes(app, holder, metrics)
    return app
