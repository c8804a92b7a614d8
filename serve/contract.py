"""The OpenAPI document as the server's contract (GET /openapi.json): every status each route
can answer, one error body (serve/errors.py ERROR_SCHEMA) for every 4xx and 5xx, the request
limits (`k`, images per request) in the request schemas, and /metrics as Prometheus text.

A route another module adds gets the error body for its 422 and a documented 500 here too;
its own other statuses are its to add (STATUSES). tests/integration/test_serve_fuzz.py runs a
schema-driven fuzzer (Schemathesis) against a real server with this document.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from serve.errors import ERROR_SCHEMA
from serve.settings import Settings

ERROR_REF = {"$ref": "#/components/schemas/Error"}
MAX_K = 100  # CIFAR-100's classes; a model with fewer answers 422 above its own count
STATUSES = {  # (path, method) -> {status: when}; 422 and 500 are added to every route
    ("/predict", "post"): {
        "400": "empty body or file, malformed JSON or multipart, a truncated or corrupt image (named)",
        "408": "the body did not arrive within body_timeout_s",
        "413": "over a limit: body bytes, images per request, pixels per image or per request (named)",
        "415": "not an accepted image format or content type",
        "422": "k out of range, or JSON images of the wrong shape, type or range",
        "503": "no model loaded yet",
    },
    ("/feedback", "post"): {
        "400": "a body that is not JSON",
        "404": "no prediction was answered under this request_id",
        "422": "a label that is no fine class index (0..99) or name, or a malformed body",
    },
    ("/ready", "get"): {"503": "no model loaded yet (the body says why)"},
}


def _image_json(s: Settings) -> dict:
    # Each image's (32, 32, 3) shape is described, not spelled out as nested minItems/maxItems: a
    # fuzzer generating 3072 exact integers per example spends minutes on one request body.
    image = {"type": "array", "description": "one image: (32, 32, 3) nested lists of integers 0..255"}
    images = {"type": "array", "items": image, "minItems": 1, "maxItems": s.max_images}
    return {"oneOf": [{"type": "object", "required": ["images"], "properties": {"images": images}}, images]}


def predict_body(s: Settings) -> dict:
    binary = {"schema": {"type": "string", "format": "binary"}}
    files = {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": s.max_images}
    content: dict[str, dict] = {"multipart/form-data": {"schema": {"type": "object", "properties": {"files": files}}}}
    content.update({t: binary for t in ("image/png", "image/jpeg", "image/gif", "image/webp")})
    content["application/json"] = {"schema": _image_json(s)}
    limits = f"at most {s.max_images} images, {s.max_request_bytes} bytes, {s.max_request_pixels} pixels in all"
    return {"required": True, "description": f"The images ({limits}).", "content": content}


PREDICTION = {
    "type": "object",
    "required": ["request_id", "variant", "model", "version", "alias", "predictions"],
    "properties": {
        "request_id": {"type": "string", "description": "quote it in POST /feedback (also the X-Request-Id header)"},
        "variant": {"type": "string", "enum": ["champion", "challenger"]},
        "model": {"type": "string"},
        "version": {"type": "string"},
        "alias": {"type": ["string", "null"]},
        "predictions": {"type": "array", "items": {"type": "object", "required": ["top_k", "coarse"]}},
    },
}


def _errors(path: str, method: str, op: dict) -> None:
    responses = op.setdefault("responses", {})
    wanted = {"422": "invalid parameters", "500": "internal error (logged with the request id)"}
    wanted.update(STATUSES.get((path, method), {}))
    for status, when in wanted.items():
        responses[status] = {"description": when, "content": {"application/json": {"schema": ERROR_REF}}}


def build(app: FastAPI, s: Settings) -> dict:
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ERROR_SCHEMA
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            _errors(path, method, op)
    predict = schema["paths"]["/predict"]["post"]
    predict["requestBody"] = predict_body(s)
    for param in predict.get("parameters", []):
        if param["name"] == "k":
            param["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": s.top_k}
    predict["responses"]["200"]["content"] = {"application/json": {"schema": PREDICTION}}
    metrics = schema["paths"]["/metrics"]["get"]["responses"]["200"]
    metrics["content"] = {"text/plain": {"schema": {"type": "string"}}}
    return schema


def document(app: FastAPI, s: Settings) -> None:
    """app.openapi() returns the contract, built once."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = build(app, s)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
