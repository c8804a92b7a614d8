"""ingest, validate and preprocess on the real CIFAR-100, where a copy is at hand.

The copy in ../shared/cifar100 (or $CIFAR100_ARCHIVE) has the official pixels,
labels and order but other bytes: with the default params (source `cifar100`) it
stands in for the download through CIFAR100_ARCHIVE, and its content must match
`data.download.content_sha256`. Skips where no copy exists (a fresh CI machine has none).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ops import baseline
from stages.lib import dataset, fsio, params
from tests.conftest import ROOT
from tests.integration.conftest import run_stage, set_params

ARCHIVE = Path(os.environ.get("CIFAR100_ARCHIVE", ROOT.parent / "shared" / "cifar100" / "cifar-100-python.tar.gz"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"no real CIFAR-100 archive at {ARCHIVE}"),
]


@pytest.fixture(scope="module")
def processed(tmp_path_factory, base_params) -> Path:
    root = tmp_path_factory.mktemp("real")
    (root / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    old, saved = os.getcwd(), os.environ.get("CIFAR100_ARCHIVE")
    os.chdir(root)
    os.environ["CIFAR100_ARCHIVE"] = str(ARCHIVE)  # the default params: source cifar100, this copy for the download
    try:
        for name in ("ingest", "validate", "preprocess"):
            assert run_stage(name) == 0, name
    finally:
        os.chdir(old)
        os.environ.pop("CIFAR100_ARCHIVE") if saved is None else os.environ.update(CIFAR100_ARCHIVE=saved)
    return root


def test_the_copy_holds_the_official_content(processed):
    expected = params.load(ROOT / "params.yaml").data.download.content_sha256
    assert dataset.content_sha256(processed / "data" / "raw") == expected


def test_the_data_stages_reproduce_the_committed_lock():
    """A clean clone of HEAD, the data stages rerun on this copy: the hashes dvc.lock commits."""
    if not (ROOT / "dvc.lock").is_file():
        pytest.skip("no committed dvc.lock")
    matches, differ = baseline.data_hashes_match(ROOT, ARCHIVE)
    assert matches, differ


def test_real_archive_passes_validation_with_its_ten_known_duplicates(processed):
    report = fsio.read_json(processed / "reports" / "validate.json")
    assert report["train_test_duplicates"] == 10
    assert report["train"]["images"] == 50000 and report["test"]["images"] == 10000
    assert (report["train"]["min_per_class"], report["test"]["min_per_class"]) == (500, 100)
    assert report["train"]["constant_images"] == report["test"]["constant_images"] == 0


def test_real_split_and_train_only_statistics(processed):
    out = processed / "data" / "processed"
    train, val, test = (dataset.load_arrays(out, s) for s in ("train", "val", "test"))
    assert (len(train.y), len(val.y), len(test.y)) == (50000, 0, 10000)  # the default val_fraction 0
    assert np.bincount(train.y).tolist() == [500] * 100
    assert test.y[:10].tolist() == [49, 33, 72, 51, 71, 92, 15, 14, 23, 0]
    meta = dataset.load_meta(out)
    # Mean/std of the 50,000 train images: the published figures.
    np.testing.assert_allclose(meta["mean"], [0.507075, 0.486549, 0.440918], atol=1e-4)
    np.testing.assert_allclose(meta["std"], [0.267334, 0.256438, 0.276150], atol=1e-4)
    assert meta["fine_names"][:3] == ["apple", "aquarium_fish", "baby"]


def test_wrong_md5_for_the_real_archive_fails_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    set_params(tmp_path, data={"source": "archive", "archive": {"path": str(ARCHIVE)}})  # the official md5
    assert run_stage("ingest") == 1
    err = capsys.readouterr().err
    assert str(ARCHIVE) in err and "data.archive.md5" in err
    assert not (tmp_path / "data" / "raw").exists()
