"""The FastAPI app: POST /predict, POST /feedback, GET /health, /ready, /metrics, and FastAPI's /docs.

Bad input gets a 4xx naming the problem before it reaches a batch, so it never
affects the other requests batched with it.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serve import contract, errors
from serve.dispatch import Dispatcher
from serve.feedback import FeedbackStore
from serve.feedback_api import Recorder, feedback_route
from serve.images import BadInput, read_images
from serve.limits import CLIENT_GONE, GONE_KEY, Bounds
from serve.metrics import Metrics
from serve.model import LoadedModel
from serve.reload import ModelHolder
from serve.settings import Settings
from serve.variants import Variants

log = logging.getLogger("serve")
ROUTES = ("/predict", "/feedback", "/health", "/ready", "/metrics", "/docs", "/openapi.json")


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


def _predict_route(
    app: FastAPI, settings: Settings, variants: Variants, dispatcher: Dispatcher, recorder: Recorder
) -> None:
    @app.post("/predict")
    async def predict(request: Request, k: int | None = None) -> JSONResponse:
        """Top-k fine labels (with superclass) and the top superclass for each image. Header
        X-Client-Id (optional) keeps a client on one variant in A/B mode; the answer names its
        variant and version (body and X-Model-Variant / X-Model-Version) and its X-Request-Id."""
        client_key = request.headers.get("x-client-id") or None
        holder = variants.pick(client_key)
        model = holder.current if holder else None
        if holder is None or model is None:
            raise HTTPException(503, f"no model loaded yet ({variants.champion.last_error or 'loading'})")
        k = settings.top_k if k is None else k
        if not 1 <= k <= len(model.fine_names):
            raise HTTPException(422, f"k={k}: must be 1..{len(model.fine_names)}")
        batcher = dispatcher.batchers[holder.variant]
        batcher.arriving += 1
        try:
            images = await read_images(request, settings)
        except BadInput as exc:
            raise HTTPException(exc.status, exc.message) from None
        finally:
            batcher.arriving -= 1
        results = await dispatcher.run(holder, images)
        used, request_id = results[0][0], errors.request_id(request.scope)  # the id error answers would carry
        answers = [describe(m, row, k) for m, row in results]
        dispatcher.shadow(holder, images, results)  # after the answer is computed; not awaited
        keyed = "yes" if client_key else "no"
        app.state.metrics.answers.labels(variant=holder.variant, version=used.version, keyed=keyed).inc()
        # The one place a prediction is recorded for feedback (queued; the writer thread stores it).
        recorder.record(request_id, holder.variant, used.version, int(np.argmax(results[0][1])), client_key)
        body = {"request_id": request_id, "variant": holder.variant, "model": used.name, "version": used.version}
        headers = {"X-Request-Id": request_id, "X-Model-Variant": holder.variant, "X-Model-Version": used.version}
        # A JSONResponse directly: the answer is plain JSON types, FastAPI's encoder pass is not needed.
        return JSONResponse({**body, "alias": used.alias, "predictions": answers}, headers=headers)


def _status_routes(app: FastAPI, variants: Variants, metrics: Metrics) -> None:
    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        """Ready when a variant has a model loaded; says which are missing and since when the
        registry is unreachable (null when it is reachable)."""
        holder = _any_loaded(variants)  # the champion when loaded, else the challenger
        model, status = (holder.current if holder else None), variants.status()
        if holder is None or model is None:
            last = variants.champion.last_error
            why = f"no model loaded yet ({last or 'loading'})"
            return errors.error_response(request.scope, 503, why, extra={"ready": False, "error": last, **status})
        body = {"ready": True, "model": model.name, "version": model.version, "alias": model.alias}
        last_error = variants.champion.last_error
        return JSONResponse({**body, "device": model.device, "last_error": last_error, **status})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _any_loaded(variants: Variants) -> ModelHolder | None:
    return next((h for h in variants.holders.values() if h.current is not None), None)


def _loaded_model(variants: Variants) -> LoadedModel | None:
    """A loaded model's class names map feedback labels (every variant has the same classes)."""
    holder = _any_loaded(variants)
    return holder.current if holder else None


def create_app(settings: Settings, holder: ModelHolder | Variants | None = None, follow: bool = True) -> FastAPI:
    """The app; `holder` is the champion's holder (single mode) or the pair; `follow` starts the
    thread that loads the models and follows their aliases."""
    if isinstance(holder, Variants):
        variants = holder
    else:
        variants = Variants(settings, holder.metrics if holder else Metrics(), holder)
    metrics = variants.metrics
    dispatcher = Dispatcher(variants, metrics)
    recorder = Recorder(FeedbackStore(settings.feedback_url))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if follow:
            variants.start()
        dispatcher.start()
        recorder.start()
        yield
        await dispatcher.stop()
        recorder.stop()  # after the batchers: every answered prediction is queued by then
        variants.stop()

    app = FastAPI(title="CIFAR-100 classifier", version="1", lifespan=lifespan)
    app.state.holder, app.state.metrics, app.state.batcher = variants.champion, metrics, dispatcher.batchers["champion"]
    app.state.variants, app.state.dispatcher, app.state.recorder = variants, dispatcher, recorder

    app.add_middleware(Bounds, max_bytes=settings.max_request_bytes, body_timeout_s=settings.body_timeout_s)
    app.add_middleware(_Count, metrics=metrics)  # outside Bounds: it counts what Bounds answers
    errors.install(app)
    contract.document(app, settings)

    _predict_route(app, settings, variants, dispatcher, recorder)
    feedback_route(app, lambda: _loaded_model(variants), recorder)
    _status_routes(app, variants, metrics)
    return app
