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
    assert report["train_test_duplicates"] == 0


def _fails(project, capsys, expected: str):
    assert run_stage("validate") == 1
    assert expected in capsys.readouterr().err
    assert not (project / "reports" / "validate.json").exists()


def test_constant_image_fails(project, capsys):
    def flatten_one(ds):
        images = ds.train.images.copy()
        images[7] = 128
        return _with_train(ds, images=images)

    _write(project, flatten_one)
    _fails(project, capsys, "train: 1 constant images")


def test_image_shared_by_train_and_test_fails(project, capsys):
    def leak(ds):
        test = ds.test.images.copy()
        test[0] = ds.train.images[3]
        return dataclasses.replace(ds, test=dataclasses.replace(ds.test, images=test))

    _write(project, leak)
    _fails(project, capsys, "1 test images also in train, allowed 0")


def test_class_below_minimum_fails(project, capsys):
    set_params(project, validate={"min_train_per_class": 5})
    _write(project)
    _fails(project, capsys, "train: a class has 4 images, need >= 5")


def test_inconsistent_coarse_mapping_and_bad_labels_fail(project, capsys):
    def remap(ds):
        coarse = ds.train.coarse.copy()
        coarse[np.flatnonzero(ds.train.fine == 0)[0]] = 19
        return _with_train(ds, coarse=coarse)

    _write(project, remap)
    _fails(project, capsys, "fine_labels map to more than one coarse label")
    _write(project, lambda ds: _with_train(ds, fine=np.where(ds.train.fine == 0, 100, ds.train.fine)))
    _fails(project, capsys, "train: fine_labels outside 0..99")


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
