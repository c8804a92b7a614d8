"""The serving app in-process (for coverage) on a real MLflow registry: predictions,
every bad input, metrics, hot reload, a failed load, rollback."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from serve import settings as settings_mod
from serve.app import create_app
from serve.images import decode_image
from serve.metrics import Metrics
from serve.reload import ModelHolder
from smoke import serving
from stages.lib import registry
from stages.lib.cli import PipelineError

RNG = np.random.default_rng(0)


def _app(root, **changes):
    s = settings_mod.load(root / "params.yaml", env={"MLFLOW_TRACKING_URI": serving.store_uri(root)})
    s = dataclasses.replace(s, **changes)
    holder = ModelHolder(s, Metrics())
    return holder, create_app(s, holder, follow=False)


def _client(root):
    return MlflowClient(tracking_uri=serving.store_uri(root), registry_uri=serving.store_uri(root))


def test_predictions_equal_pyfunc_for_files_and_json(serve_store):
    root, v1, _ = serve_store
    holder, app = _app(root)
    assert holder.check()
    small = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    large = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    batch = RNG.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    files = [("files", ("a.png", serving.png(small), "image/png")), ("files", ("b.jpg", serving.png(large, "JPEG")))]
    with TestClient(app) as http:
        got_files = http.post("/predict", files=files, params={"k": 3})
        got_json = http.post("/predict", json={"images": batch.tolist()})
        got_raw = http.post("/predict", content=serving.png(small), headers={"content-type": "image/png"})
    assert got_files.status_code == got_json.status_code == got_raw.status_code == 200, got_files.text
    body = got_files.json()
    assert (body["model"], body["version"], body["alias"]) == (serving.NAME, v1, "champion")
    decoded = np.stack([small, decode_image(serving.png(large, "JPEG"), "b", 1 << 20)])
    expect = serving.pyfunc_probs(root, v1, np.concatenate([decoded, batch]))
    answers = body["predictions"] + got_json.json()["predictions"]
    for answer, probs in zip(answers, expect):
        top = answer["top_k"]
        assert [t["label"] for t in top] == [serving.FINE[i] for i in np.argsort(-probs)[: len(top)]]
        assert np.allclose([t["probability"] for t in top], np.sort(probs)[::-1][: len(top)], atol=1e-5)
        assert top[0]["coarse"] == serving.COARSE[serving.FINE_TO_COARSE[int(probs.argmax())]]
        coarse = np.bincount(serving.FINE_TO_COARSE, weights=probs, minlength=20)
        assert answer["coarse"]["label"] == serving.COARSE[int(coarse.argmax())]
        assert answer["coarse"]["probability"] == pytest.approx(coarse.max(), abs=1e-5)
    assert len(body["predictions"][0]["top_k"]) == 3 and len(answers[2]["top_k"]) == 5
    raw = got_raw.json()["predictions"][0]["top_k"]
    assert [t["label"] for t in raw[:3]] == [t["label"] for t in body["predictions"][0]["top_k"]]


def _truncated_png() -> bytes:
    data = serving.png(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return data[: len(data) // 2]


BAD = [
    ("not an image", {"files": [("files", ("x.png", b"hello, not an image", "image/png"))]}, 415, "not a PNG or JPEG"),
    ("truncated png", {"files": [("files", ("t.png", _truncated_png(), "image/png"))]}, 400, "truncated or corrupt"),
    (
        "tiff",
        {"content": serving.png(np.zeros((4, 4, 3), np.uint8), "TIFF"), "headers": {"content-type": "image/tiff"}},
        415,
        "tiff",
    ),
    ("empty body", {"content": b"", "headers": {"content-type": "image/png"}}, 400, "empty request body"),
    ("empty file", {"files": [("files", ("e.png", b"", "image/png"))]}, 400, "empty file"),
    ("no file part", {"files": [("note", (None, b"hello"))]}, 400, "no file part"),
    ("bad json", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ("json key", {"json": {"pixels": []}}, 422, 'send {"images"'),
    ("json shape", {"json": {"images": np.zeros((2, 32, 32), int).tolist()}}, 422, "shape (2, 32, 32)"),
    ("json ragged", {"json": {"images": [[1, 2], [3]]}}, 422, "ragged"),
    ("json dtype", {"json": {"images": np.full((1, 32, 32, 3), 0.5).tolist()}}, 422, "dtype float64"),
    ("json range", {"json": {"images": np.full((1, 32, 32, 3), 300).tolist()}}, 422, "outside uint8"),
    ("content type", {"content": b"abc", "headers": {"content-type": "text/plain"}}, 415, "text/plain"),
    ("k", {"json": {"images": np.zeros((1, 32, 32, 3), int).tolist()}, "params": {"k": 0}}, 422, "k=0"),
]


def test_every_bad_input_gets_a_4xx_naming_it_and_the_server_goes_on(serve_store):
    root, _, _ = serve_store
    holder, app = _app(root, max_image_pixels=64 * 64, max_request_bytes=200_000)
    holder.check()
    huge = serving.png(np.zeros((100, 100, 3), np.uint8))
    cases = BAD + [
        ("huge image", {"files": [("files", ("h.png", huge, "image/png"))]}, 413, "100x100 image is over"),
        ("huge body", {"content": b"\0" * 300_000, "headers": {"content-type": "image/png"}}, 413, "300000 bytes"),
    ]
    with TestClient(app) as http:
        for name, kwargs, status, words in cases:
            got = http.post("/predict", **kwargs)
            assert got.status_code == status, (name, got.text)
            assert words.lower() in got.json()["detail"].lower(), (name, got.text)
        ok = http.post("/predict", json={"images": np.zeros((1, 32, 32, 3), int).tolist()})
        assert ok.status_code == 200
        metrics = http.get("/metrics").text
    assert 'cifar100_requests_total{route="/predict",status="415"} 3.0' in metrics


def test_health_ready_metrics_and_docs(serve_store):
    root, v1, _ = serve_store
    holder, app = _app(root)
    with TestClient(app) as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/ready").status_code == 503
        assert http.post("/predict", json={"images": []}).status_code == 503
        holder.check()
        ready = http.get("/ready").json()
        assert ready["ready"] and ready["version"] == v1 and ready["alias"] == "champion"
        http.post("/predict", json={"images": np.zeros((2, 32, 32, 3), int).tolist()})
        assert "/predict" in http.get("/openapi.json").json()["paths"]
        assert http.get("/docs").status_code == 200
        text = http.get("/metrics").text
    for name in (
        "cifar100_drift_score",
        "cifar100_drift_detected",
        f'cifar100_model_info{{alias="champion",version="{v1}"}} 1.0',
        'cifar100_requests_total{route="/health",status="200"}',
        'cifar100_request_latency_seconds_bucket{le="0.001",route="/health"}',
        "cifar100_batch_size_count 1.0",
        "cifar100_predicted_class_total{class_name=",
        f'cifar100_confidence_count{{variant="champion",version="{v1}"}} 2.0',
        "cifar100_model_reload_failures_total 0.0",
    ):
        assert name in text, name


def test_follows_the_alias_keeps_the_old_model_when_a_load_fails_and_rolls_back(serve_store):
    root, v1, v2 = serve_store
    holder, _ = _app(root)
    client = _client(root)
    assert holder.check() and holder.current.version == v1
    assert not holder.check()  # nothing moved
    registry.move_champion(client, serving.NAME, v2)
    assert holder.check() and holder.current.version == v2
    broken = registry.create_version(client, serving.NAME, f"file://{root}/no-such-model", None, {})
    registry.move_champion(client, serving.NAME, broken)
    assert not holder.check()
    assert holder.current.version == v2 and holder.metrics.reload_failures._value.get() == 1
    assert "no-such-model" in holder.last_error or "No such file" in holder.last_error
    assert registry.rollback(client, serving.NAME) == (broken, v2)
    assert json_history(client, v2) == [v1]
    assert registry.rollback(client, serving.NAME) == (v2, v1)
    assert holder.check() and holder.current.version == v1
    with pytest.raises(PipelineError, match="nothing to roll back to"):
        registry.rollback(client, serving.NAME)


def json_history(client, version) -> list[str]:
    import json

    return json.loads(client.get_model_version(serving.NAME, version).tags[registry.HISTORY_TAG])


def test_a_pinned_version_and_a_version_without_a_card(serve_template, tmp_path):
    root = serving.copy_store(serve_template[0], tmp_path / "store")
    version = serving.register(root, seed=3, champion=False, card=False)
    holder, _ = _app(root, model=version)
    assert holder.check() and holder.current.alias is None
    assert holder.current.fine_names[:2] == ["class_0", "class_1"]
    # Registered pickled (registry.log_model), so the drift monitor can have the embedding too.
    assert hasattr(holder.current.module, "forward_with_embedding")


def test_an_internal_error_is_one_log_line_with_the_request_id_and_the_error_body(serve_store, monkeypatch, caplog):
    import serve.app

    root, _, _ = serve_store
    holder, app = _app(root)
    holder.check()

    def broken(*args):
        raise KeyError("planted")

    monkeypatch.setattr(serve.app, "describe", broken)
    with TestClient(app, raise_server_exceptions=False) as http, caplog.at_level("ERROR", logger="serve"):
        got = http.post("/predict", json={"images": np.zeros((1, 32, 32, 3), int).tolist()})
        assert http.get("/health").status_code == 200
        metrics = http.get("/metrics").text
    rid = got.json()["request_id"]
    assert got.status_code == 500 and rid in got.json()["detail"] and got.headers["x-request-id"] == rid
    lines = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(lines) == 1 and rid in lines[0].getMessage() and "KeyError" in lines[0].getMessage()
    assert lines[0].exc_info is None and "test_serve_app.py:" in lines[0].getMessage()  # where it was raised
    assert 'cifar100_requests_total{route="/predict",status="500"} 1.0' in metrics


def test_the_openapi_document_has_one_error_body_and_the_limits(serve_store):
    root, _, _ = serve_store
    _, app = _app(root, max_images=7)
    with TestClient(app) as http:
        doc = http.get("/openapi.json").json()
        not_ready = http.get("/ready")
    assert not_ready.status_code == 503 and not_ready.json()["ready"] is False and not_ready.json()["detail"]
    for ops in doc["paths"].values():
        for op in ops.values():
            for status, answer in op["responses"].items():
                if status >= "400":
                    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    predict = doc["paths"]["/predict"]["post"]
    assert sorted(predict["responses"]) == ["200", "400", "408", "413", "415", "422", "500", "503"]
    body = predict["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["files"]["maxItems"] == 7
    assert body["application/json"]["schema"]["oneOf"][1]["maxItems"] == 7
    k = next(p for p in predict["parameters"] if p["name"] == "k")
    assert (k["schema"]["minimum"], k["schema"]["maximum"]) == (1, 100)
    assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
