"""Champion and challenger in one server (serve/variants.py) on a real MLflow registry holding
two versions: sticky A/B assignment, the share tag, shadow scoring that never answers nor delays,
and either variant missing or failing while the other serves."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from serve import settings as settings_mod
from serve.app import create_app
from serve.assign import CHALLENGER, CHAMPION, choose, experiment_id
from serve.follow import SHARE_TAG
from serve.metrics import Metrics
from serve.variants import Variants
from smoke import serving
from stages.lib import registry

IMAGES = {"images": np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).tolist()}
SLOW_S = 4.0  # the shadow test's challenger takes this long per batch


def _pair(root, mode: str, **changes):
    s = settings_mod.load(root / "params.yaml", env={"MLFLOW_TRACKING_URI": serving.store_uri(root)})
    s = dataclasses.replace(s, mode=mode, **changes)
    variants = Variants(s, Metrics())
    return variants, create_app(s, variants, follow=False)


def _registry(root) -> MlflowClient:
    return MlflowClient(tracking_uri=serving.store_uri(root), registry_uri=serving.store_uri(root))


def _sample(text: str, line_start: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_start))


def test_ab_assignment_is_sticky_named_in_every_answer_and_follows_the_share_tag(serve_store):
    root, v1, v2 = serve_store
    _registry(root).set_registered_model_alias(serving.NAME, CHALLENGER, v2)
    variants, app = _pair(root, "ab", challenger_share=50.0)
    variants.follower.poll()
    keys = [f"user-{i}" for i in range(24)]
    with TestClient(app) as http:
        got = {key: http.post("/predict", json=IMAGES, headers={"X-Client-Id": key}) for key in keys}
        again = {key: http.post("/predict", json=IMAGES, headers={"X-Client-Id": key}) for key in keys[:8]}
        unkeyed = [http.post("/predict", json=IMAGES) for _ in range(3)]
        exp = experiment_id(v1, v2)
        for key, resp in got.items():
            body, want = resp.json(), choose(50.0, exp, key)
            assert resp.status_code == 200 and body["variant"] == want, (key, body)
            assert body["version"] == {CHAMPION: v1, CHALLENGER: v2}[want] == resp.headers["X-Model-Version"]
            assert resp.headers["X-Model-Variant"] == want and resp.headers["X-Request-Id"] == body["request_id"]
            assert again.get(key, resp).json()["variant"] == want  # sticky
        assert len({r.json()["request_id"] for r in got.values()}) == len(keys)
        assert {r.json()["variant"] for r in got.values()} == {CHAMPION, CHALLENGER}  # 24 keys at 50 %
        text = http.get("/metrics").text
        assert _sample(text, 'cifar100_predictions_total{keyed="no"') == len(unkeyed)  # counted apart
        assert _sample(text, 'cifar100_predictions_total{keyed="yes"') == len(keys) + 8
        assert f'cifar100_confidence_count{{variant="challenger",version="{v2}"}}' in text
        assert "cifar100_challenger_share 50.0" in text and 'cifar100_serve_mode{mode="ab"} 1.0' in text
        _registry(root).set_registered_model_tag(serving.NAME, SHARE_TAG, "0")  # the guardrail's stop
        variants.follower.poll()
        after = [http.post("/predict", json=IMAGES, headers={"X-Client-Id": k}).json()["variant"] for k in keys]
        assert set(after) == {CHAMPION} and http.get("/ready").json()["challenger_share"] == 0.0
        _registry(root).set_registered_model_tag(serving.NAME, SHARE_TAG, "lots")
        variants.follower.poll()
        ready = http.get("/ready").json()
    assert ready["challenger_share"] == 50.0 and "from 0 to 100" in ready["share_tag_error"]  # the setting stands


def _slow(model):
    real = model.predict

    def predict(images):
        time.sleep(SLOW_S)
        return real(images)

    model.predict = predict


@pytest.mark.parametrize("same_version", [False, True])
def test_shadow_scores_copies_after_the_champion_answered_and_never_answers(serve_store, same_version):
    root, v1, v2 = serve_store
    _registry(root).set_registered_model_alias(serving.NAME, CHALLENGER, v1 if same_version else v2)
    variants, app = _pair(root, "shadow")
    variants.follower.poll()
    _slow(variants.holders[CHALLENGER].current)
    with TestClient(app) as http:
        answers = []
        for i in range(4):
            start = time.perf_counter()
            resp = http.post("/predict", json=IMAGES, headers={"X-Client-Id": f"c{i}"})
            answers.append((resp, time.perf_counter() - start))
        assert all(r.status_code == 200 and r.json()["variant"] == CHAMPION for r, _ in answers)
        assert all(r.json()["version"] == v1 and r.headers["X-Model-Variant"] == CHAMPION for r, _ in answers)
        assert max(t for _, t in answers) < SLOW_S / 2, answers  # the slow challenger delays no answer
        deadline = time.monotonic() + 8 * SLOW_S + 30
        while time.monotonic() < deadline and _sample(http.get("/metrics").text, "cifar100_shadow_compared_total") < 8:
            time.sleep(0.2)
        text = http.get("/metrics").text
    compared, agreed = _sample(text, "cifar100_shadow_compared_total"), _sample(text, "cifar100_shadow_agreed_total")
    assert compared == 8 and 0 <= agreed <= compared  # 4 requests x 2 images
    if same_version:
        assert agreed == compared  # one model agrees with itself
    assert _sample(text, 'cifar100_predictions_total{keyed="yes",variant="challenger"') == 0


def test_either_variant_missing_or_failing_the_other_serves_and_ready_says_so(serve_store):
    root, v1, v2 = serve_store
    client = _registry(root)
    variants, app = _pair(root, "ab", challenger_share=100.0)
    variants.follower.poll()  # no challenger alias yet
    with TestClient(app) as http:
        ready = http.get("/ready").json()
        assert ready["ready"] and ready["missing"] == [CHALLENGER] and ready["version"] == v1
        assert "no alias 'challenger'" in ready["variants"][CHALLENGER]["last_error"]
        assert http.post("/predict", json=IMAGES, headers={"X-Client-Id": "a"}).json()["variant"] == CHAMPION
        text = http.get("/metrics").text
        assert 'cifar100_variant_up{variant="challenger"} 0.0' in text
        assert 'cifar100_variant_fallbacks_total{wanted="challenger"} 1.0' in text
        broken = registry.create_version(client, serving.NAME, f"file://{root}/no-such-model", None, {})
        client.set_registered_model_alias(serving.NAME, CHALLENGER, broken)
        variants.follower.poll()  # a failed challenger load never stops the champion
        assert variants.holders[CHALLENGER].current is None and variants.champion.current.version == v1
        assert http.post("/predict", json=IMAGES).json()["version"] == v1
        client.set_registered_model_alias(serving.NAME, CHALLENGER, v2)
        client.delete_registered_model_alias(serving.NAME, CHAMPION)
        fresh, app2 = _pair(root, "shadow")
        fresh.follower.poll()  # a server started without a champion serves the challenger
    with TestClient(app2) as http:
        ready = http.get("/ready").json()
        resp = http.post("/predict", json=IMAGES)
        text = http.get("/metrics").text
    assert ready["ready"] and ready["missing"] == [CHAMPION] and ready["version"] == v2
    assert resp.json()["variant"] == CHALLENGER and resp.headers["X-Model-Version"] == v2
    assert 'cifar100_variant_up{variant="champion"} 0.0' in text and ready["registry"]["reachable"]
