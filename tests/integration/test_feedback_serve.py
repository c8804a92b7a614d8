"""POST /predict answers carry a request id, recorded for feedback off the event loop; POST /feedback
labels it by index or name (stored, then replaced), 404 for an unknown id, 422 for a bad label;
the rows survive the server's restart."""

from __future__ import annotations

import dataclasses

import numpy as np
from fastapi.testclient import TestClient

from serve import settings as settings_mod
from serve.app import create_app
from serve.feedback import FeedbackStore
from serve.metrics import Metrics
from serve.reload import ModelHolder
from smoke import serving

RNG = np.random.default_rng(3)


def _app(root, **changes):
    s = settings_mod.load(root / "params.yaml", env={"MLFLOW_TRACKING_URI": serving.store_uri(root)})
    s = dataclasses.replace(s, **changes)
    holder = ModelHolder(s, Metrics())
    assert holder.check()
    return s, create_app(s, holder, follow=False)


def test_predict_then_feedback(serve_store):
    root, v1, _ = serve_store
    s, app = _app(root)
    assert s.feedback_url == f"sqlite:///{(root / 'feedback.db').resolve()}"
    image = RNG.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    with TestClient(app) as http:
        got = http.post("/predict", json={"images": image.tolist()}, headers={"X-Client-Id": "tester"})
        assert got.status_code == 200, got.text
        body, rid = got.json(), got.headers["x-request-id"]
        assert body["request_id"] == rid and body["variant"] == "champion" == got.headers["x-model-variant"]
        assert got.headers["x-model-version"] == v1
        top1 = serving.FINE.index(body["predictions"][0]["top_k"][0]["label"])
        first = http.post("/feedback", json={"request_id": rid, "label": top1})
        again = http.post("/feedback", json={"request_id": rid, "label": serving.FINE[(top1 + 1) % 100]})
        assert (first.status_code, first.json()["status"]) == (200, "stored"), first.text
        assert (again.status_code, again.json()["status"], again.json()["label"]) == (200, "replaced", (top1 + 1) % 100)
        unknown = http.post("/feedback", json={"request_id": "no-such-id", "label": 1})
        bad = [http.post("/feedback", json={"request_id": rid, "label": x}) for x in (100, -1, "not_a_class")]
        missing = http.post("/feedback", json={"label": 1})
    assert unknown.status_code == 404 and "no-such-id" in unknown.json()["detail"]
    assert [r.status_code for r in bad] == [422, 422, 422] and "0..99" in bad[0].json()["detail"]
    assert missing.status_code == 422
    store = FeedbackStore(s.feedback_url)  # after the app stopped: a fresh engine reads what it wrote
    rows = store.labelled()
    store.dispose()
    assert [(r.request_id, r.variant, r.version, r.predicted, r.label) for r in rows] == [
        (rid, "champion", v1, top1, (top1 + 1) % 100)
    ]


def test_a_dead_store_never_fails_a_prediction(serve_store, tmp_path):
    root, _, _ = serve_store
    _, app = _app(root, feedback_url=f"sqlite:///{tmp_path / 'fb.db'}")
    image = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    with TestClient(app) as http:
        (tmp_path / "fb.db").unlink()
        (tmp_path / "fb.db").mkdir()  # the database file is gone and cannot be recreated
        app.state.recorder.store.dispose()
        answers = [http.post("/predict", json={"images": [image.tolist()]}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert app.state.recorder.dropped >= 1
