import dataclasses

import numpy as np
import pytest

from stages.lib import dataset, fsio, synthetic
from stages.lib.params import SyntheticParams
from tests.integration.conftest import run_stage, set_params

SMALL = SyntheticParams(train_per_class=4, test_per_class=2, noise=10.0, seed=0)


def _write(project, change=None):
    ds = synthetic.generate(SMALL)
    if change:
        ds = change(ds)
    dataset.write_raw(project / "data" / "raw", ds)


def _with_train(ds, **changes):
    return dataclasses.replace(ds, train=dataclasses.replace(ds.train, **changes))


def test_valid_data_passes_and_writes_the_report(project):
    _write(project)
    assert run_stage("validate") == 0
    report = fsio.read_json(project / "reports" / "validate.json")
    assert report["train"] == {"images": 400, "min_per_class": 4, "max_per_class": 4, "constant_images": 0}
    assert report["train_test_duplicates"] == 0 and report["train_test_duplicate_pairs"] == []


def _fails(project, capsys, expected: str):
    fsio.write_json(project / "reports" / "validate.json", {"stale": True})  # from an earlier, passing run
    assert run_stage("validate") == 1
    assert expected in capsys.readouterr().err
    assert not (project / "reports" / "validate.json").exists()


def test_constant_image_fails(project, capsys):
    def flatten_one(ds):
        images = ds.train.images.copy()
        images[7] = 128
        return _with_train(ds, images=images)

    _write(project, flatten_one)
    _fails(project, capsys, "train: 1 constant images at 7")


def test_image_shared_by_train_and_test_fails(project, capsys):
    def leak(ds):
        test = ds.test.images.copy()
        test[0] = ds.train.images[3]
        return dataclasses.replace(ds, test=dataclasses.replace(ds.test, images=test))

    _write(project, leak)
    _fails(project, capsys, "1 test images also in train, allowed 0: train[3] = test[0]")


def test_class_below_minimum_fails(project, capsys):
    set_params(project, validate={"min_train_per_class": 5})
    _write(project)
    _fails(
        project,
        capsys,
        "train: class 0 (class_000) has 4 images, class 1 (class_001) has 4 images, class 2 (class_002) has 4 images, "
        "class 3 (class_003) has 4 images, class 4 (class_004) has 4 images, ... (100 classes in all), need >= 5",
    )


def test_inconsistent_coarse_mapping_and_bad_labels_fail(project, capsys):
    def remap(ds):
        coarse = ds.train.coarse.copy()
        at = np.flatnonzero(ds.train.fine == 0)
        coarse[at[2]] = 19
        return _with_train(ds, coarse=coarse)

    _write(project, remap)
    ds = synthetic.generate(SMALL)
    first, changed = np.flatnonzero(ds.train.fine == 0)[[0, 2]]
    right = ds.train.coarse[first]
    where = f"coarse {right} (train[{first}]) and coarse 19 (train[{changed}])"
    _fails(project, capsys, f"fine label 0 (class_000) maps to {where}")
    _write(project, lambda ds: _with_train(ds, fine=np.where(ds.train.fine == 0, 100, ds.train.fine)))
    at = np.flatnonzero(ds.train.fine == 0)
    more = ", ".join(map(str, at[1:]))
    _fails(project, capsys, f"train: fine_labels[{at[0]}] = 100, outside 0..99 (and 3 more: {more})")


@pytest.fixture
def set_val(project):
    set_params(project, preprocess={"val_fraction": 0.25, "seed": 0}, validate={"max_train_test_duplicates": 0})


def test_preprocess_writes_split_arrays_and_train_only_stats(project, set_val):
    _write(project)
    assert run_stage("preprocess") == 0
    out = project / "data" / "processed"
    meta = dataset.load_meta(out)
    assert meta["sizes"] == {"train": 300, "val": 100, "test": 200}
    train = dataset.load_arrays(out, "train")
    assert train.x.shape == (300, 3, 32, 32) and train.x.dtype == np.uint8
    assert np.bincount(dataset.load_arrays(out, "val").y).tolist() == [1] * 100
    expected = (np.asarray(train.x, dtype=np.float64) / 255).mean(axis=(0, 2, 3))
    assert meta["mean"] == pytest.approx(expected.tolist())
    assert meta["fine_to_coarse"] == [c // 5 for c in range(100)]


def test_wrong_number_of_class_names_fails(project, capsys):
    _write(project, lambda ds: dataclasses.replace(ds, coarse_names=ds.coarse_names[:19]))
    _fails(project, capsys, "meta: expected 100 fine and 20 coarse names, got 100 and 19")


def test_every_violated_rule_is_reported_at_once(project, capsys):
    set_params(project, validate={"min_test_per_class": 3})

    def two_problems(ds):
        images = ds.test.images.copy()
        images[0] = 0
        return dataclasses.replace(ds, test=dataclasses.replace(ds.test, images=images))

    _write(project, two_problems)
    assert run_stage("validate") == 1
    err = capsys.readouterr().err
    assert err.startswith("validate: error: data/raw failed validation: ")
    assert "test: class 0 (class_000) has 2 images" in err and "need >= 3" in err
    assert "test: 1 constant images at 0" in err


def test_preprocess_is_byte_reproducible(project, set_val):
    _write(project)
    assert run_stage("preprocess") == 0
    out = project / "data" / "processed"
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == sorted(
        [f"{s}_{k}.npy" for s in ("train", "val", "test") for k in ("x", "y", "coarse")] + ["meta.json"]
    )
    assert run_stage("preprocess") == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_preprocess_keeps_image_label_pairs(project, set_val):
    """A processed image is its raw image in (3, 32, 32) layout, next to its own label."""
    _write(project)
    assert run_stage("preprocess") == 0
    raw = synthetic.generate(SMALL)
    test = dataset.load_arrays(project / "data" / "processed", "test")
    np.testing.assert_array_equal(np.asarray(test.x).reshape(len(test.y), -1), raw.test.images)
    np.testing.assert_array_equal(test.y, raw.test.fine)
    np.testing.assert_array_equal(test.coarse, raw.test.coarse)
    train = dataset.load_arrays(project / "data" / "processed", "train")
    val = dataset.load_arrays(project / "data" / "processed", "val")
    rows = {row.tobytes(): label for row, label in zip(raw.train.images, raw.train.fine)}
    for split in (train, val):
        flat = np.asarray(split.x).reshape(len(split.y), -1)
        assert all(rows[row.tobytes()] == label for row, label in zip(flat, split.y))
    assert len(train.y) + len(val.y) == len(raw.train.fine)


def test_preprocess_without_raw_data_names_the_file(project, capsys):
    assert run_stage("preprocess") == 1
    assert "data/raw/train_images.npy: file not found (run the ingest stage)" in capsys.readouterr().err
    assert not (project / "data" / "processed").exists()


@pytest.mark.parametrize("bad", [-1, 150])
def test_out_of_range_labels_fail_cleanly(project, capsys, bad):
    def relabel_one(ds):
        fine = ds.train.fine.copy()
        fine[0] = bad
        return _with_train(ds, fine=fine)

    _write(project, relabel_one)
    fsio.write_json(project / "reports" / "validate.json", {"stale": True})
    assert run_stage("validate") == 1
    err = capsys.readouterr().err
    prefix = "validate: error: data/raw failed validation: "
    assert err.startswith(f"{prefix}train: fine_labels[0] = {bad}, outside 0..99\n")
    assert "Traceback" not in err and "has 0 images" not in err
    assert not (project / "reports" / "validate.json").exists()


def test_empty_test_split_fails_on_the_class_minimum(project, capsys):
    empty = np.empty(0, dtype=np.int64)
    _write(
        project,
        lambda ds: dataclasses.replace(
            ds, test=dataclasses.replace(ds.test, images=np.empty((0, 3072), np.uint8), fine=empty, coarse=empty)
        ),
    )
    _fails(project, capsys, "test: class 0 (class_000) has 0 images, class 1 (class_001) has 0 images")
