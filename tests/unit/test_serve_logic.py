"""Serving logic in-process: settings, input decoding, micro-batching."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
from PIL import Image

from serve import settings as settings_mod
from serve.batcher import MicroBatcher
from serve.images import BadInput, decode_image, parse_json_batch
from stages.lib.cli import PipelineError
from tests.conftest import ROOT


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_settings_from_params_then_env():
    s = settings_mod.load(ROOT / "params.yaml", env={})
    assert (s.host, s.port, s.model, s.model_name) == ("127.0.0.1", 8080, "champion", "cifar100-classifier")
    assert s.tracking_uri == f"sqlite:///{ROOT / 'mlflow.db'}" and not s.pinned
    env = {"SERVE_PORT": "9001", "SERVE_MODEL": "7", "SERVE_MAX_WAIT_MS": "0", "MLFLOW_TRACKING_URI": "http://x"}
    s = settings_mod.load(ROOT / "params.yaml", env=env)
    assert (s.port, s.model, s.max_wait_ms, s.tracking_uri, s.pinned) == (9001, "7", 0.0, "http://x", True)


@pytest.mark.parametrize(
    "env, words",
    [
        ({"SERVE_PORT": "eighty"}, "SERVE_PORT='eighty' is not a valid int"),
        ({"SERVE_PORT": "0"}, "port must be > 0"),
        ({"SERVE_DEVICE": "tpu"}, "SERVE_DEVICE='tpu'"),
        ({"SERVE_MODEL": "champ ion"}, "give an alias"),
        ({"SERVE_MAX_WAIT_MS": "-1"}, "max_wait_ms must be >= 0"),
    ],
)
def test_bad_settings_are_one_line_naming_the_variable(env, words):
    with pytest.raises(PipelineError) as err:
        settings_mod.load(ROOT / "params.yaml", env=env)
    assert words in str(err.value)


def test_images_of_any_size_and_mode_become_32x32_rgb():
    rgba = Image.new("RGBA", (200, 100), (10, 20, 30, 128))
    gray = Image.new("L", (32, 32), 77)
    palette = Image.new("RGB", (64, 64), (255, 0, 0)).convert("P")
    for img, fmt, pixel in ((rgba, "PNG", (10, 20, 30)), (gray, "JPEG", None), (palette, "PNG", (255, 0, 0))):
        out = decode_image(_encode(img, fmt), "f", 1 << 20)
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
        if pixel:
            assert tuple(out[5, 5]) == pixel
    exact = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    assert (decode_image(_encode(Image.fromarray(exact), "PNG"), "f", 1 << 20) == exact).all()


def test_bad_images_name_the_file_and_the_problem():
    png = _encode(Image.new("RGB", (40, 40)), "PNG")
    cases = [
        (b"", 400, "x.png: empty file"),
        (b"GIF89a" + b"\0" * 20, 415, "x.png: not a PNG or JPEG"),
        (_encode(Image.new("RGB", (8, 8)), "BMP"), 415, "x.png: BMP image; send PNG or JPEG"),
        (png[: len(png) - 30], 400, "x.png: truncated or corrupt PNG"),
        (_encode(Image.new("RGB", (50, 50)), "PNG"), 413, "x.png: 50x50 image is over the 2000-pixel limit"),
    ]
    for data, status, words in cases:
        with pytest.raises(BadInput) as err:
            decode_image(data, "x.png", 2000)
        assert err.value.status == status and words in err.value.message, err.value.message


def test_json_batches():
    ok = np.zeros((2, 32, 32, 3), dtype=np.int64)
    assert parse_json_batch({"images": ok.tolist()}).dtype == np.uint8
    assert parse_json_batch(ok.tolist()).shape == (2, 32, 32, 3)
    for body, words in (
        ({"x": 1}, 'send {"images"'),
        ([], "shape (0,)"),
        ([[[[1.5] * 3] * 32] * 32], "dtype float64"),
        ([[[[True] * 3] * 32] * 32], "dtype bool"),
        ([[[["a"] * 3] * 32] * 32], "dtype <U1"),
        ([[[[-1] * 3] * 32] * 32], "values -1..-1"),
    ):
        with pytest.raises(BadInput) as err:
            parse_json_batch(body)
        assert err.value.status == 422 and words in err.value.message, err.value.message


def _run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_batches_within_the_bound_and_get_their_own_rows():
    seen: list[int] = []

    def run_batch(images):
        seen.append(len(images))
        return [int(img[0, 0, 0]) for img in images]

    async def main():
        batcher = MicroBatcher(run_batch, max_batch=4, max_wait_s=0.05)
        batcher.start()
        batcher.arriving = 1  # another request is being read: the first one waits for company
        jobs = [np.full((n, 32, 32, 3), i, np.uint8) for i, n in enumerate((1, 2, 1, 3, 1))]
        try:
            return await asyncio.gather(*(batcher.submit(j) for j in jobs))
        finally:
            await batcher.stop()

    results = _run(main())
    assert results == [[0], [1, 1], [2], [3, 3, 3], [4]]
    assert max(seen) <= 4 and sum(seen) == 8 and len(seen) < 5  # batched, never over the bound, never split


def test_a_lone_request_does_not_wait_and_a_failed_batch_fails_only_its_requests():
    calls = []

    def run_batch(images):
        calls.append(len(images))
        if images[0, 0, 0, 0] == 9:
            raise RuntimeError("model broke")
        return list(range(len(images)))

    async def main():
        batcher = MicroBatcher(run_batch, max_batch=8, max_wait_s=10.0)
        batcher.start()
        try:
            first = await asyncio.wait_for(batcher.submit(np.zeros((1, 32, 32, 3), np.uint8)), 5)
            with pytest.raises(RuntimeError, match="model broke"):
                await asyncio.wait_for(batcher.submit(np.full((1, 32, 32, 3), 9, np.uint8)), 5)
            again = await asyncio.wait_for(batcher.submit(np.zeros((2, 32, 32, 3), np.uint8)), 5)
            return first, again
        finally:
            await batcher.stop()

    assert _run(main()) == ([0], [0, 1])


def test_main_stops_in_one_line_on_bad_settings(tmp_path, capsys):
    from serve.__main__ import main

    assert main(["--params", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: file not found" in capsys.readouterr().err
    assert main(["--params", str(ROOT / "params.yaml"), "--model", "no such alias"]) == 2
    assert "give an alias" in capsys.readouterr().err


class _Status:
    score, drifted, filled, details = 0.7, True, 3, {}


class _Monitor:
    """Stands in for serve/drift.py's DriftMonitor (another branch): records what the server feeds it."""

    def __init__(self):
        self.seen = []

    @classmethod
    def from_profile(cls, path, window=500):
        monitor = cls()
        monitor.path = path
        return monitor

    def observe(self, images, probs, embedding):
        self.seen.append((images.shape, probs.shape, embedding))

    def status(self):
        return _Status()


def test_drift_seam_feeds_the_monitor_after_each_batch_and_sets_the_gauges(tmp_path, monkeypatch):
    import sys
    import types

    import torch

    import serve
    from serve.dispatch import _forward
    from serve.metrics import Metrics
    from serve.model import LoadedModel, attach_monitor

    assert attach_monitor(tmp_path) is None  # no profile in the model folder
    (tmp_path / "extra_files").mkdir()
    (tmp_path / "extra_files" / "reference_profile.json").write_text("{}")
    fake = types.SimpleNamespace(DriftMonitor=_Monitor)
    monkeypatch.setitem(sys.modules, "serve.drift", fake)
    monkeypatch.setattr(
        serve, "drift", fake, raising=False
    )  # `from serve import drift` reads the attribute once imported
    monitor = attach_monitor(tmp_path)
    assert monitor.path == tmp_path / "extra_files" / "reference_profile.json"

    def module(x):
        return torch.softmax(torch.arange(4, dtype=torch.float32).repeat(len(x), 1), dim=1)

    model = LoadedModel("m", "1", "champion", module, "cpu", ["a", "b", "c", "d"], ["x", "y"], np.array([0, 0, 1, 1]))
    model.monitor = monitor
    metrics = Metrics()
    results = _forward(types.SimpleNamespace(current=model), metrics)(np.zeros((3, 32, 32, 3), np.uint8))
    assert len(results) == 3 and results[0][0] is model
    assert monitor.seen == [((3, 32, 32, 3), (3, 4), None)]  # no forward_with_embedding: plain forward
    labels = {"variant": "champion", "version": "1"}
    assert metrics.drift_score.labels(**labels)._value.get() == 0.7
    assert metrics.drift_detected.labels(**labels)._value.get() == 1
    assert metrics.predicted.labels(class_name="d", **labels)._value.get() == 3


def test_a_registered_card_is_read_through_its_typed_owner(tmp_path):
    from serve.model import CARD, read_card
    from smoke import serving
    from stages.lib import model_card

    assert read_card(tmp_path, "models:/m/1") is None  # registered without a card: placeholders
    (tmp_path / CARD).parent.mkdir()
    card = model_card.to_dict(serving.make_card("small"))
    (tmp_path / CARD).write_text(json.dumps(card))
    assert read_card(tmp_path, "models:/m/1").fine_names == serving.FINE
    (tmp_path / CARD).write_text(json.dumps({**card, "num_classes": 7}))
    with pytest.raises(model_card.ModelCardError) as bad:
        read_card(tmp_path, "models:/m/1")
    assert str(bad.value).startswith("models:/m/1: extra_files/model.json") and "num_classes is 7" in str(bad.value)
    assert "\n" not in str(bad.value)
    (tmp_path / CARD).write_text("{")
    with pytest.raises(model_card.ModelCardError, match=r"models:/m/1: extra_files/model.json: not valid JSON"):
        read_card(tmp_path, "models:/m/1")
