"""make drift-report: a folder or .npy of images against a reference profile -> HTML, PNG, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ops import drift_report
from smoke import serving
from stages.lib import drift_profile, fsio, model, model_card
from tests.unit.test_drift import C, images, outputs


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    probs, _ = outputs(1000, rng)
    emb = rng.normal(0, 1, size=(1000, 128))  # the small net's embedding width
    profile = drift_profile.build_profile(images(1000, rng), probs, emb, [f"c{i}" for i in range(C)], 3)
    path = tmp_path_factory.mktemp("profile") / "reference_profile.json"
    fsio.write_json(path, profile)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small untrained net saved as train saves one (stages/lib/model_card.py)."""
    root = tmp_path_factory.mktemp("models") / "models"
    torch.manual_seed(0)
    card = serving.make_card("small", [f"c{i}" for i in range(C)], ["all"], [0] * C)
    model_card.save(root, model.build("small", C).state_dict(), card)
    return root


def test_shifted_npy_window_is_reported_as_drift(profile_path, tmp_path, capsys):
    np.save(tmp_path / "window.npy", images(60, np.random.default_rng(1), shift=50))
    out = tmp_path / "report"
    argv = ["--images", str(tmp_path / "window.npy"), "--profile", str(profile_path), "--out", str(out)]
    assert drift_report.main(argv) == 0
    assert "drift-report: DRIFT" in capsys.readouterr().out
    summary = json.loads((out / "drift_report.json").read_text())
    assert summary["drifted"] and summary["filled"] == 60 and summary["tests"]["brightness"]["drifted"]
    assert set(summary["tests"]) == set(drift_profile.IMAGE_FEATURES)  # no model: image features only
    page = (out / "drift_report.html").read_text()
    assert "Drift report: DRIFT" in page and "image features only" in page and "drift_report.png" in page
    assert (out / "drift_report.png").read_bytes()[:4] == b"\x89PNG"


def test_folder_of_images_any_size_with_a_model(profile_path, model_dir, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(images(20, np.random.default_rng(2))):
        size = 32 if i % 2 else 64  # other sizes are resized to 32x32
        Image.fromarray(img).resize((size, size)).save(folder / f"{i:02d}.{'png' if i % 3 else 'jpg'}")
    (folder / "notes.txt").write_text("ignored")
    status = drift_report.report(profile_path, folder, model_dir, tmp_path / "out", 0.05)
    assert status.filled == 20
    assert {"confidence", "predicted_class", "pca_0"} <= set(status.details["tests"])
    assert "image features and the model" in (tmp_path / "out" / "drift_report.html").read_text()


def test_bad_inputs_fail_with_one_line(profile_path, model_dir, tmp_path, capsys):
    def err(*argv) -> str:
        assert drift_report.main(["--profile", str(profile_path), "--out", str(tmp_path / "o"), *argv]) == 1
        return capsys.readouterr().err.strip()

    assert err("--images", str(tmp_path / "missing")).endswith(
        "missing: not a folder of images or a .npy file (IMAGES=DIR or IMAGES=FILE.npy)"
    )
    (tmp_path / "empty").mkdir()
    assert err("--images", str(tmp_path / "empty")).endswith("empty: no .png/.jpg/.jpeg files")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"\x89PNG not really")
    assert "a.png: not a readable image" in err("--images", str(tmp_path / "broken"))
    np.save(tmp_path / "f.npy", np.zeros((20, 32, 32, 3), dtype=np.float32))
    assert "expected uint8 (N, 32, 32, 3) images, got float32 (20, 32, 32, 3)" in err(
        "--images", str(tmp_path / "f.npy")
    )
    (tmp_path / "trunc.npy").write_bytes(b"\x93NUMPY")
    assert "trunc.npy: not a readable .npy array" in err("--images", str(tmp_path / "trunc.npy"))
    np.save(tmp_path / "few.npy", np.zeros((3, 32, 32, 3), dtype=np.uint8))
    assert err("--images", str(tmp_path / "few.npy")) == "drift-report: error: 3 images: a report needs at least 10"
    np.save(tmp_path / "ok.npy", np.zeros((12, 32, 32, 3), dtype=np.uint8))
    no_model = err("--images", str(tmp_path / "ok.npy"), "--model", str(tmp_path / "nomodel"))
    assert (
        no_model == f"drift-report: error: {tmp_path / 'nomodel' / 'model.json'}: file not found (run the train stage)"
    )
    other = drift_profile.build_profile(*_tiny_profile_inputs(), 2)  # a 6-d embedding: another model's
    fsio.write_json(tmp_path / "other.json", other)
    mismatch = err(
        "--images", str(tmp_path / "ok.npy"), "--profile", str(tmp_path / "other.json"), "--model", str(model_dir)
    )
    assert mismatch.endswith("embedding: expected (N, 6), got (12, 128): the model and the profile do not match")
    bad_profile = drift_report.main(["--images", str(tmp_path / "ok.npy"), "--profile", str(tmp_path / "nope.json")])
    assert bad_profile == 1 and "nope.json: file not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing half-written


def _tiny_profile_inputs():
    rng = np.random.default_rng(3)
    probs, emb = outputs(50, rng)
    return images(50, rng), probs, emb, [f"c{i}" for i in range(C)]
