"""Data that fails validation (item 9) or is missing or truncated: one line naming where."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable

import pytest

from tests.support.faults import Expect, Sandbox, assert_clean

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def edit_raw(sb: Sandbox, change: Callable) -> None:
    from stages.lib import dataset

    root = sb.root / "data" / "raw"
    ds = dataset.read_raw(root)
    shutil.rmtree(root)  # DVC may have linked it to the cache: never write through a link
    dataset.write_raw(root, change(ds))


def with_train(ds, **changes):
    return dataclasses.replace(ds, train=dataclasses.replace(ds.train, **changes))


def label_out_of_range(ds):
    fine = ds.train.fine.copy()
    fine[123] = 100
    return with_train(ds, fine=fine)


def fine_two_coarse(ds):
    coarse = ds.train.coarse.copy()
    coarse[(ds.train.fine == 7).nonzero()[0][1]] = (ds.train.coarse[ds.train.fine == 7][0] + 1) % 20
    return with_train(ds, coarse=coarse)


def missing_class(ds):
    keep = ds.train.fine != 42
    return with_train(ds, images=ds.train.images[keep], fine=ds.train.fine[keep], coarse=ds.train.coarse[keep])


def constant_images(ds):
    images = ds.train.images.copy()
    images[[5, 17]] = 128
    return with_train(ds, images=images)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        pytest.param(label_out_of_range, ("fine_labels[123] = 100, outside 0..99",), id="validate_label_out_of_range"),
        pytest.param(fine_two_coarse, ("fine label 7", "train["), id="validate_fine_two_coarse"),
        pytest.param(missing_class, ("class 42",), id="validate_missing_class"),
        pytest.param(constant_images, ("constant images at 5, 17",), id="validate_constant_images"),
    ],
)
def test_validate_names_the_bad_data(sb, change, words):
    edit_raw(sb, change)
    assert_clean(sb, Expect(sb.stage("validate"), words=words))


def test_raw_data_missing(sb):
    shutil.rmtree(sb.root / "data" / "raw")
    assert_clean(sb, Expect(sb.stage("preprocess"), words=("file not found",)))


def test_processed_truncated(sb):
    path = sb.root / "data" / "processed" / "train_x.npy"
    data = path.read_bytes()
    path.unlink()  # may be a link into the DVC cache
    path.write_bytes(data[: len(data) // 2])
    assert_clean(sb, Expect(sb.stage("train"), words=("train_x.npy",)))
