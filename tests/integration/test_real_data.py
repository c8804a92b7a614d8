"""ingest (archive), validate and preprocess on the real CIFAR-100, where a copy is at hand.

The copy in ../shared/cifar100 (or $CIFAR100_ARCHIVE) has the official pixels,
labels and order but other bytes, so its md5 goes in params as the `archive`
source allows. Skips where no copy exists (a fresh CI machine has none).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from stages.lib import dataset, fsio
from tests.conftest import ROOT
from tests.integration.conftest import run_stage, set_params

ARCHIVE = Path(os.environ.get("CIFAR100_ARCHIVE", ROOT.parent / "shared" / "cifar100" / "cifar-100-python.tar.gz"))
MD5 = os.environ.get("CIFAR100_ARCHIVE_MD5", "673b6f8b362abfed6f6d4955426fa6c4")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"no real CIFAR-100 archive at {ARCHIVE}"),
]


@pytest.fixture(scope="module")
def processed(tmp_path_factory, base_params) -> Path:
    root = tmp_path_factory.mktemp("real")
    (root / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    old = os.getcwd()
    os.chdir(root)
    try:
        set_params(root, data={"source": "archive", "archive": {"path": str(ARCHIVE), "md5": MD5}})
        for name in ("ingest", "validate", "preprocess"):
            assert run_stage(name) == 0, name
    finally:
        os.chdir(old)
    return root


def test_real_archive_passes_validation_with_its_ten_known_duplicates(processed):
    report = fsio.read_json(processed / "reports" / "validate.json")
    assert report["train_test_duplicates"] == 10
    assert report["train"]["images"] == 50000 and report["test"]["images"] == 10000
    assert (report["train"]["min_per_class"], report["test"]["min_per_class"]) == (500, 100)
    assert report["train"]["constant_images"] == report["test"]["constant_images"] == 0


def test_real_split_and_train_only_statistics(processed):
    out = processed / "data" / "processed"
    train, val, test = (dataset.load_arrays(out, s) for s in ("train", "val", "test"))
    assert (len(train.y), len(val.y), len(test.y)) == (45000, 5000, 10000)
    assert np.bincount(val.y).tolist() == [50] * 100  # stratified: val_fraction 0.1 of 500 per class
    assert test.y[:10].tolist() == [49, 33, 72, 51, 71, 92, 15, 14, 23, 0]
    meta = dataset.load_meta(out)
    # Mean/std of the train split alone, close to the full 50k train set's published figures.
    np.testing.assert_allclose(meta["mean"], [0.507075, 0.486549, 0.440918], atol=2e-3)
    np.testing.assert_allclose(meta["std"], [0.267334, 0.256438, 0.276150], atol=2e-3)
    assert meta["fine_names"][:3] == ["apple", "aquarium_fish", "baby"]


def test_wrong_md5_for_the_real_archive_fails_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    set_params(tmp_path, data={"source": "archive", "archive": {"path": str(ARCHIVE)}})  # the official md5
    assert run_stage("ingest") == 1
    err = capsys.readouterr().err
    assert str(ARCHIVE) in err and "data.archive.md5" in err
    assert not (tmp_path / "data" / "raw").exists()
