"""Drift features and detector on constructed data: exact values where they are known,
and decisions on samples whose difference (or sameness) is built in."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serve import drift
from stages.lib import drift_profile as dp

C = 10  # classes in the constructed profiles


def images(n: int, rng, shift: float = 0.0, noise: float = 0.0) -> np.ndarray:
    """Smooth random images (a per-image colour plus a gentle gradient); `shift` adds brightness
    (uint8 levels), `noise` adds Gaussian pixel noise (std, uint8 levels)."""
    base = rng.uniform(60, 180, size=(n, 1, 1, 3))
    ramp = np.linspace(-20, 20, 32)[None, :, None, None] * rng.uniform(-1, 1, size=(n, 1, 1, 1))
    x = base + ramp + shift + rng.normal(0, noise, size=(n, 32, 32, 3)) if noise else base + ramp + shift
    return np.clip(np.broadcast_to(x, (n, 32, 32, 3)), 0, 255).astype(np.uint8)


def outputs(n: int, rng, skew: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Fake model outputs: probs (n, C) and a 6-d embedding; `skew` sends most predictions to class 0."""
    logits = rng.normal(0, 1, size=(n, C))
    if skew:
        logits[:, 0] += 5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs.astype(np.float32), rng.normal(0, 1, size=(n, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def profile() -> dict:
    rng = np.random.default_rng(0)
    probs, emb = outputs(3000, rng)
    return dp.build_profile(images(3000, rng), probs, emb, [f"c{i}" for i in range(C)], pca_components=3)


# ---- features ----------------------------------------------------------------
def test_features_of_a_flat_gray_image_are_exact():
    f = dp.image_features(np.full((2, 32, 32, 3), 51, dtype=np.uint8))
    assert list(f) == list(dp.IMAGE_FEATURES)
    for name in ("mean_r", "mean_g", "mean_b", "brightness"):
        assert f[name] == pytest.approx([0.2, 0.2])
    for name in ("std_r", "std_g", "std_b", "contrast", "saturation", "gradient", "laplacian"):
        assert f[name] == pytest.approx([0, 0], abs=1e-12)
    assert f["blockiness"] == pytest.approx([1.0, 1.0])


def test_saturation_and_channel_means_of_pure_red():
    x = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    x[..., 0] = 255
    f = dp.image_features(x)
    assert (f["mean_r"][0], f["mean_g"][0], f["saturation"][0]) == pytest.approx((1.0, 0.0, 1.0))
    assert f["brightness"][0] == pytest.approx(0.299)


def test_blockiness_sees_steps_on_the_8px_grid_only():
    on, off = np.zeros((1, 32, 32, 3), dtype=np.uint8), np.zeros((1, 32, 32, 3), dtype=np.uint8)
    on[:, :, 8:] = 200  # a step between columns 7 and 8: a JPEG block edge
    off[:, :, 4:] = 200  # a step inside a block
    assert dp.image_features(on)["blockiness"][0] > 10 > 1 > dp.image_features(off)["blockiness"][0]


def test_noise_raises_and_smoothing_lowers_high_frequency_energy():
    rng = np.random.default_rng(1)
    clean = images(50, rng)
    noisy = images(50, np.random.default_rng(1), noise=20)
    assert (dp.image_features(noisy)["laplacian"] > dp.image_features(clean)["laplacian"]).all()


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((2, 32, 32, 3), dtype=np.float32), "float32 (2, 32, 32, 3)"),
        (np.zeros((2, 32, 32), dtype=np.uint8), "uint8 (2, 32, 32)"),
        ([[1, 2]], "list"),
    ],
)
def test_bad_images_are_named(bad, message):
    with pytest.raises(
        ValueError,
        match=r"expected uint8 \(N, 32, 32, 3\) images, got " + message.replace("(", r"\(").replace(")", r"\)"),
    ):
        dp.image_features(bad)


def test_pca_finds_the_direction_of_a_line_and_projects_on_it():
    t = np.linspace(-1, 1, 101)[:, None]
    emb = 3 + t * np.array([[0.6, 0.8, 0.0]])
    pca = dp.fit_pca(emb, components=2)
    assert np.abs(pca["components"][0]) == pytest.approx([0.6, 0.8, 0.0])
    assert pca["explained_variance_ratio"][0] == pytest.approx(1.0)
    z = dp.project(np.array([[3.0, 3.0, 3.0]]), pca)
    assert z["pca_0"] == pytest.approx([0.0])
    with pytest.raises(ValueError, match=r"embedding: expected \(N, 3\), got \(1, 4\)"):
        dp.project(np.zeros((1, 4)), pca)


def test_profile_holds_every_feature_and_class_counts(profile):
    assert profile["version"] == dp.PROFILE_VERSION and profile["images"] == 3000
    assert set(profile["features"]) == {*dp.IMAGE_FEATURES, "confidence", "pca_0", "pca_1", "pca_2"}
    assert all(len(v) == 3000 for v in profile["features"].values())
    assert sum(profile["classes"]["counts"]) == 3000 and len(profile["classes"]["names"]) == C
    assert len(profile["pca"]["components"]) == 3 and profile["embedding_dim"] == 6
    json.dumps(profile)  # JSON-ready
    with pytest.raises(ValueError, match="do not match 2 images"):
        dp.build_profile(np.zeros((2, 32, 32, 3), np.uint8), np.zeros((3, C)), np.zeros((2, 6)), list("abcdefghij"), 2)


# ---- tests and corrections -----------------------------------------------------
def test_pooled_bins_expect_at_least_five_each():
    counts = np.array([500, 300, 100, 50, 30, 10, 5, 3, 1, 1], dtype=float)
    for window in (20, 100, 500, 5000):
        bins = drift.pooled_bins(counts, window)
        expected = np.bincount(bins, weights=counts / counts.sum()) * window
        assert (expected >= drift.MIN_EXPECTED).all() or len(expected) == 1
    assert len(set(drift.pooled_bins(np.full(100, 10.0), 500))) == 100  # uniform: each class expects 5
    assert len(set(drift.pooled_bins(np.full(100, 10.0), 100))) == 20


def test_class_test_separates_same_and_skewed_predictions():
    rng = np.random.default_rng(2)
    ref = np.bincount(rng.integers(0, C, 5000), minlength=C).astype(float)
    _, p_same = drift.class_pvalue(rng.integers(0, C, 500), ref)
    _, p_skew = drift.class_pvalue(np.zeros(500, dtype=np.int64), ref)
    assert p_same > 0.001 and p_skew < 1e-50
    assert drift.class_pvalue(np.zeros(5, dtype=np.int64), ref) == (0.0, 1.0)  # one pooled bin


def test_score_is_minus_log10_and_capped():
    assert drift.score_of(1.0) == 0.0 and drift.score_of(0.01) == pytest.approx(2.0)
    assert drift.score_of(0.0) == drift.MAX_SCORE


# ---- the monitor ----------------------------------------------------------------
def test_nothing_is_tested_until_the_window_is_filled(profile):
    mon = drift.DriftMonitor.from_profile(profile, window=200)
    rng = np.random.default_rng(3)
    mon.observe(images(150, rng), *outputs(150, rng))
    st = mon.status()
    assert (st.score, st.drifted, st.filled, st.details["tests"]) == (0.0, False, 150, {})


def test_clean_window_passes_and_a_brightness_shift_is_caught(profile):
    rng = np.random.default_rng(4)
    mon = drift.DriftMonitor.from_profile(profile, window=300)
    for _ in range(3):
        mon.observe(images(100, rng), *outputs(100, rng))
    clean = mon.status()
    assert (
        clean.filled == 300
        and not clean.drifted
        and clean.score < -np.log10(mon.alpha)
        and mon.alpha == drift.DEFAULT_ALPHA
    )
    m = len(clean.details["tests"])
    assert m == len(dp.IMAGE_FEATURES) + 1 + 3 + 1  # images, confidence, 3 PCA, predicted class
    assert all(t["p_corrected"] == pytest.approx(min(1.0, t["p"] * m)) for t in clean.details["tests"].values())
    mon.observe(images(300, rng, shift=40), *outputs(300, rng))  # replaces the whole window
    shifted = mon.status()
    assert shifted.drifted and shifted.score > 10 and shifted.filled == 300
    assert shifted.details["tests"]["brightness"]["drifted"] and shifted.details["seen"] == 600
    mon.reset()
    assert mon.status().filled == 0 and not mon.status().drifted


def test_skewed_predictions_alone_are_caught(profile):
    rng = np.random.default_rng(5)
    mon = drift.DriftMonitor.from_profile(profile, window=300)
    probs, emb = outputs(300, rng, skew=True)
    mon.observe(images(300, rng), probs, emb)
    st = mon.status()
    assert st.drifted and st.details["tests"]["predicted_class"]["drifted"]
    assert not st.details["tests"]["brightness"]["drifted"]


def test_without_model_outputs_only_image_features_are_tested(profile):
    rng = np.random.default_rng(6)
    mon = drift.DriftMonitor.from_profile(profile, window=100)
    mon.observe(images(100, rng))
    assert set(mon.status().details["tests"]) == set(dp.IMAGE_FEATURES)
    mon.observe(images(100, rng), outputs(100, rng)[0], None)  # probs but no embedding
    assert set(mon.status().details["tests"]) == {*dp.IMAGE_FEATURES, "confidence", "predicted_class"}


def test_the_window_rolls(profile):
    rng = np.random.default_rng(7)
    mon = drift.DriftMonitor.from_profile(profile, window=50)
    mon.observe(images(30, rng, shift=60), *outputs(30, rng))
    mon.observe(images(70, rng), *outputs(70, rng))  # more than the window: the last 50 stay
    assert mon.status().filled == 50 and not mon.status().drifted
    values = mon.window_values()
    assert len(values["brightness"]) == 50 and len(values["pca_0"]) == 50


def test_bad_inputs_and_settings_are_named(profile, tmp_path):
    mon = drift.DriftMonitor.from_profile(profile, window=50)
    rng = np.random.default_rng(8)
    with pytest.raises(ValueError, match=r"probs: expected \(4, 10\), got \(4, 3\)"):
        mon.observe(images(4, rng), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="window must be >= 10 images, got 5"):
        drift.DriftMonitor(profile, window=5)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\), got 1.5"):
        drift.DriftMonitor(profile, alpha=1.5)
    with pytest.raises(ValueError, match="nope.json: file not found"):
        drift.DriftMonitor.from_profile(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json: not a JSON reference profile"):
        drift.DriftMonitor.from_profile(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text(json.dumps({"version": 0}))
    with pytest.raises(ValueError, match="not a reference profile of version 1 .got 0.; rerun `dvc repro profile`"):
        drift.DriftMonitor.from_profile(tmp_path / "old.json")
    incomplete = {k: v for k, v in profile.items() if k != "pca"}
    with pytest.raises(ValueError, match="profile: reference profile has no 'pca'"):
        drift.DriftMonitor(incomplete)
    lacking = {**profile, "features": {k: v for k, v in profile["features"].items() if k != "contrast"}}
    with pytest.raises(ValueError, match="lacks feature 'contrast'"):
        drift.DriftMonitor(lacking)


def test_profile_file_round_trip(profile, tmp_path):
    path = tmp_path / "reference_profile.json"
    path.write_text(json.dumps(profile))
    mon = drift.DriftMonitor.from_profile(str(path), window=20, alpha=0.01, min_fill=10)
    assert (mon.window, mon.alpha, mon.min_fill) == (20, 0.01, 10)
    rng = np.random.default_rng(9)
    mon.observe(images(12, rng), *outputs(12, rng))
    assert mon.status().details["tests"]  # min_fill reached before the window is full


# ---- the serving model's embedding -------------------------------------------------
@pytest.mark.parametrize("arch, width", [("small", 128), ("resnet9", 512)])
def test_forward_with_embedding_gives_forwards_probs_and_the_penultimate_width(arch, width):
    import torch

    from stages.lib import model

    torch.manual_seed(0)
    serving = model.ServingModel(model.build(arch, 7), [0.5] * 3, [0.25] * 3).eval()
    x = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    with torch.no_grad():
        probs, emb = serving.forward_with_embedding(x)
        assert torch.equal(probs, serving(x))
    assert probs.shape == (3, 7) and emb.shape == (3, width) and probs.dtype == torch.float32


def test_forward_with_embedding_needs_a_sequential_net_with_a_linear_head():
    import torch

    from stages.lib import model

    x = torch.zeros((1, 32, 32, 3), dtype=torch.uint8)
    with pytest.raises(TypeError, match="needs an nn.Sequential net, got Conv2d"):
        model.ServingModel(torch.nn.Conv2d(3, 3, 1), [0.5] * 3, [0.25] * 3).forward_with_embedding(x)
    with pytest.raises(TypeError, match="needs a net with a Linear classifier layer"):
        model.ServingModel(torch.nn.Sequential(torch.nn.Flatten()), [0.5] * 3, [0.25] * 3).forward_with_embedding(x)


def test_ks_on_the_presorted_reference_equals_scipys():
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(10)
    ref = rng.normal(0, 1, 3000)
    for window in (rng.normal(0, 1, 500), rng.normal(0.2, 1, 500), np.round(rng.normal(0, 1, 200), 1)):
        res = ks_2samp(window, ref, method="asymp")
        assert drift.ks_sorted(window, np.sort(ref)) == pytest.approx((res.statistic, res.pvalue), rel=1e-9, abs=1e-300)


def test_tests_rerun_only_after_retest_every_new_images(profile):
    rng = np.random.default_rng(11)
    mon = drift.DriftMonitor.from_profile(profile, window=100, retest_every=40)
    mon.observe(images(100, rng), *outputs(100, rng))
    clean = mon.status()
    assert not clean.drifted
    mon.observe(images(30, rng, shift=80), *outputs(30, rng))  # 30 < 40 new images: the last verdict stands
    cached = mon.status()
    assert (cached.score, cached.drifted, cached.filled) == (clean.score, False, 100)
    mon.observe(images(10, rng, shift=80), *outputs(10, rng))  # 40 new: tested again
    assert mon.status().drifted


def test_a_reload_carries_an_active_alarm_until_the_new_monitor_has_a_full_window(profile):
    rng = np.random.default_rng(8)
    old = drift.DriftMonitor.from_profile(profile, window=100)
    old.observe(images(100, rng, shift=40), *outputs(100, rng))
    assert old.status().drifted
    new = drift.DriftMonitor.from_profile(profile, window=100)
    assert drift.carry_alarm(old, new, "v1")
    assert new.status().drifted and new.status().details["held_from"] == "v1" and new.status().filled == 0
    new.observe(images(50, rng), *outputs(50, rng))
    assert new.status().drifted  # half a window: no verdict of its own yet
    new.observe(images(50, rng), *outputs(50, rng))
    assert not new.status().drifted and "held_from" not in new.status().details  # its own clean verdict
    calm = drift.DriftMonitor.from_profile(profile, window=100)
    assert not drift.carry_alarm(new, calm, "v2") and not drift.carry_alarm(None, calm, "v0")
    assert not drift.carry_alarm(old, None, "v1")  # a version without a profile: the gauges keep their value
