import numpy as np
import pytest

from stages.evaluate import per_class, summarise
from stages.preprocess import channel_stats, stratified_split


def test_stratified_split_takes_the_fraction_from_every_class():
    labels = np.repeat(np.arange(10), 20)
    train, val = stratified_split(labels, 0.25, seed=0)
    assert np.bincount(labels[val]).tolist() == [5] * 10
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 200
    assert np.all(np.diff(val) > 0)


def test_stratified_split_is_deterministic_per_seed():
    labels = np.repeat(np.arange(5), 10)
    a, b = stratified_split(labels, 0.3, 1), stratified_split(labels, 0.3, 1)
    assert np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], stratified_split(labels, 0.3, 2)[1])


def test_zero_fraction_gives_an_empty_val_split():
    train, val = stratified_split(np.arange(4), 0.0, 0)
    assert len(val) == 0 and len(train) == 4


def test_channel_stats_match_numpy_in_unit_range():
    x = np.random.default_rng(0).integers(0, 256, (50, 3, 8, 8), dtype=np.uint8)
    mean, std = channel_stats(x)
    f = x.astype(np.float64) / 255
    assert mean == pytest.approx(f.mean(axis=(0, 2, 3)).tolist())
    assert std == pytest.approx(f.std(axis=(0, 2, 3)).tolist())


@pytest.mark.parametrize("shape", [(50, 3, 8, 8), (23, 3, 5, 5)])
def test_channel_stats_are_exact_over_many_chunks_and_odd_planes(shape):
    x = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    f = x.astype(np.float64)
    mean, std = channel_stats(x, chunk=7)
    assert np.allclose(mean, f.mean(axis=(0, 2, 3)) / 255, rtol=1e-12, atol=0)
    assert np.allclose(std, f.std(axis=(0, 2, 3)) / 255, rtol=1e-9, atol=0)


def test_summarise_top1_top5_loss_and_superclass():
    logits = np.full((2, 10), -10.0)
    logits[0, 3] = 5  # right
    logits[1, 4], logits[1, 2] = 5, 4  # wrong, but label 2 is second
    m = summarise(logits, np.array([3, 2]), np.array([1, 1]), np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 2]))
    assert m["top1"] == 0.5 and m["top5"] == 1.0 and m["superclass_top1"] == 1.0
    assert m["loss"] > 0


def test_per_class_accuracy():
    acc = per_class(np.array([0, 1, 1]), np.array([0, 1, 0]), ["a", "b", "c"])
    assert acc == {"a": 0.5, "b": 1.0, "c": 0.0}


def test_stratified_split_rounds_per_class_and_covers_every_index():
    labels = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], [3, 7, 10]))
    train, val = stratified_split(labels, 0.3, seed=4)
    assert np.bincount(labels[val], minlength=3).tolist() == [1, 2, 3]  # round(0.9), round(2.1), round(3.0)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(20))


@pytest.mark.parametrize("level", [0, 3, 128, 255])
def test_channel_stats_of_a_flat_channel_is_zero_not_nan(level):
    x = np.random.default_rng(0).integers(0, 256, (7, 3, 5, 5), dtype=np.uint8)
    x[:, 1] = level
    mean, std = channel_stats(x)
    assert mean[1] == pytest.approx(level / 255) and std[1] == pytest.approx(0.0, abs=1e-6)
    assert not np.isnan(std).any()


def test_macro_precision_recall_f1_on_a_constructed_case():
    from stages.evaluate import macro_prf

    # class 0: tp 1, predicted 2, actual 1; class 1: tp 1, predicted 1, actual 2; class 2: never seen.
    m = macro_prf(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)
    assert m["macro_precision"] == (0.5 + 1.0 + 0.0) / 3
    assert m["macro_recall"] == (1.0 + 0.5 + 0.0) / 3
    assert abs(m["macro_f1"] - (2 / 3 + 2 / 3 + 0.0) / 3) < 1e-12
