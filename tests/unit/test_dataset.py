import pickle

import numpy as np
import pytest

from stages.lib import cifar_pickles, dataset, synthetic
from stages.lib.dataset import Arrays, DatasetError
from stages.lib.params import SyntheticParams

TINY = SyntheticParams(train_per_class=3, test_per_class=2, noise=10.0, seed=1)


def test_raw_round_trip_in_official_layout(tmp_path):
    ds = synthetic.generate(TINY)
    cifar_pickles.write_pickles(tmp_path, ds)
    assert sorted(p.name for p in (tmp_path / "cifar-100-python").iterdir()) == ["meta", "test", "train"]
    back = cifar_pickles.read_pickles(tmp_path)
    np.testing.assert_array_equal(back.train.images, ds.train.images)
    np.testing.assert_array_equal(back.test.fine, ds.test.fine)
    np.testing.assert_array_equal(back.test.coarse, ds.test.coarse)
    assert back.fine_names == ds.fine_names and back.coarse_names == ds.coarse_names


def test_raw_pickles_use_the_official_keys(tmp_path):
    cifar_pickles.write_pickles(tmp_path, synthetic.generate(TINY))
    with open(tmp_path / "cifar-100-python" / "train", "rb") as f:
        record = pickle.load(f, encoding="latin1")
    assert set(record) == {"data", "fine_labels", "coarse_labels", "filenames", "batch_label"}
    assert record["data"].dtype == np.uint8 and record["data"].shape == (300, 3072)


def _rewrite(tmp_path, name, change):
    path = tmp_path / "cifar-100-python" / name
    with open(path, "rb") as f:
        record = pickle.load(f, encoding="latin1")
    change(record)
    path.write_bytes(pickle.dumps(record))
    return path


def test_missing_field_names_file_and_field(tmp_path):
    cifar_pickles.write_pickles(tmp_path, synthetic.generate(TINY))
    path = _rewrite(tmp_path, "train", lambda r: r.pop("fine_labels"))
    with pytest.raises(DatasetError, match=f"{path}: missing field 'fine_labels'"):
        cifar_pickles.read_pickles(tmp_path)


def test_wrong_dtype_and_label_count_are_named(tmp_path):
    cifar_pickles.write_pickles(tmp_path, synthetic.generate(TINY))
    _rewrite(tmp_path, "test", lambda r: r.update(data=r["data"].astype(np.float32)))
    with pytest.raises(DatasetError, match="field 'data' must be uint8"):
        cifar_pickles.read_pickles(tmp_path)
    _rewrite(tmp_path, "test", lambda r: r.update(data=r["data"].astype(np.uint8), coarse_labels=[0]))
    with pytest.raises(DatasetError, match="field 'coarse_labels' has"):
        cifar_pickles.read_pickles(tmp_path)


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(DatasetError, match="meta: file not found"):
        cifar_pickles.read_pickles(tmp_path)
    (tmp_path / "cifar-100-python").mkdir()
    (tmp_path / "cifar-100-python" / "meta").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="not a CIFAR-100 pickle"):
        cifar_pickles.read_pickles(tmp_path)


def test_processed_arrays_round_trip_memory_mapped(tmp_path):
    x = np.arange(2 * 3 * 32 * 32, dtype=np.uint8).reshape(2, 3, 32, 32)
    dataset.save_arrays(tmp_path, "val", Arrays(x, np.array([1, 2]), np.array([0, 0])))
    back = dataset.load_arrays(tmp_path, "val")
    assert isinstance(back.x, np.memmap)
    np.testing.assert_array_equal(back.x, x)
    np.testing.assert_array_equal(back.y, [1, 2])


def test_missing_processed_files_point_at_the_stage(tmp_path):
    with pytest.raises(DatasetError, match="run the preprocess stage"):
        dataset.load_arrays(tmp_path, "train")
    with pytest.raises(DatasetError, match="meta.json: file not found"):
        dataset.load_meta(tmp_path)


def test_corrupt_or_mismatched_processed_arrays_fail_naming_the_file(tmp_path):
    x = np.zeros((2, 3, 32, 32), dtype=np.uint8)
    dataset.save_arrays(tmp_path, "val", Arrays(x, np.array([1, 2]), np.array([0, 0])))
    (tmp_path / "val_y.npy").write_bytes((tmp_path / "val_y.npy").read_bytes()[:20])
    with pytest.raises(DatasetError, match=r"val_y\.npy: not a readable \.npy array"):
        dataset.load_arrays(tmp_path, "val")
    dataset.save_arrays(tmp_path, "val", Arrays(x, np.array([1, 2, 3]), np.array([0, 0])))
    with pytest.raises(DatasetError, match="do not match"):
        dataset.load_arrays(tmp_path, "val")
    np.save(tmp_path / "val_x.npy", x.astype(np.float32))
    with pytest.raises(DatasetError, match=r"val_x\.npy: expected uint8 with 4 dims, got float32"):
        dataset.load_arrays(tmp_path, "val")


def test_synthetic_is_deterministic_per_seed_and_in_format():
    a, b = synthetic.generate(TINY), synthetic.generate(TINY)
    np.testing.assert_array_equal(a.train.images, b.train.images)
    other = synthetic.generate(SyntheticParams(3, 2, 10.0, seed=2))
    assert not np.array_equal(a.train.images, other.train.images)
    assert a.train.images.shape == (300, 3072) and a.train.images.dtype == np.uint8
    assert np.bincount(a.train.fine).tolist() == [3] * 100
    np.testing.assert_array_equal(a.train.coarse, a.train.fine // 5)
    assert len(a.fine_names) == 100 and len(a.coarse_names) == 20


def test_torchvision_reads_the_written_layout(tmp_path, monkeypatch):
    """The raw format is CIFAR-100's own: torchvision's reader loads it unchanged."""
    from torchvision.datasets import CIFAR100, cifar

    # torchvision checks each file against the official md5s, which belong to the real data only.
    monkeypatch.setattr(cifar, "check_integrity", lambda *args: True)
    ds = synthetic.generate(TINY)
    cifar_pickles.write_pickles(tmp_path, ds)
    train = CIFAR100(str(tmp_path), train=True, download=False)
    assert train.data.shape == (300, 32, 32, 3) and train.targets == ds.train.fine.tolist()
    np.testing.assert_array_equal(train.data[5], ds.train.images[5].reshape(3, 32, 32).transpose(1, 2, 0))
    assert train.classes == ds.fine_names


def test_missing_meta_field_names_file_and_field(tmp_path):
    cifar_pickles.write_pickles(tmp_path, synthetic.generate(TINY))
    path = _rewrite(tmp_path, "meta", lambda r: r.pop("coarse_label_names"))
    with pytest.raises(DatasetError) as exc:
        cifar_pickles.read_pickles(tmp_path)
    assert str(exc.value) == f"{path}: missing field 'coarse_label_names'"


def test_bad_pickle_names_the_file(tmp_path):
    cifar_pickles.write_pickles(tmp_path, synthetic.generate(TINY))
    path = tmp_path / "cifar-100-python" / "test"
    path.write_bytes(b"\x80\x04truncated")
    with pytest.raises(DatasetError) as exc:
        cifar_pickles.read_pickles(tmp_path)
    assert str(exc.value).startswith(f"{path}: not a CIFAR-100 pickle (")


def test_data_field_of_the_wrong_shape_is_named(tmp_path):
    cifar_pickles.write_pickles(tmp_path, synthetic.generate(TINY))
    path = _rewrite(tmp_path, "train", lambda r: r.update(data=r["data"].reshape(300, 3, 1024)))
    with pytest.raises(DatasetError) as exc:
        cifar_pickles.read_pickles(tmp_path)
    assert str(exc.value) == f"{path}: field 'data' must be uint8 (N, 3072), got uint8 (300, 3, 1024)"


def test_processed_npy_bytes_depend_only_on_the_arrays(tmp_path):
    arrays = Arrays(np.zeros((2, 3, 32, 32), np.uint8), np.array([0, 1]), np.array([0, 0]))
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        dataset.save_arrays(tmp_path / name, "train", arrays)
    for key in ("x", "y", "coarse"):
        assert (tmp_path / "a" / f"train_{key}.npy").read_bytes() == (tmp_path / "b" / f"train_{key}.npy").read_bytes()
    assert dataset.load_arrays(tmp_path / "a", "train").y.dtype == np.int64


def test_synthetic_bytes_are_identical_for_a_seed_and_images_are_distinct():
    a, b = synthetic.generate(TINY), synthetic.generate(TINY)
    for split in ("train", "test"):
        for key in ("images", "fine", "coarse"):
            assert getattr(getattr(a, split), key).tobytes() == getattr(getattr(b, split), key).tobytes()
    assert len(np.unique(a.train.images, axis=0)) == len(a.train.images)
    assert a.test.images.shape == (200, 3072) and np.bincount(a.test.fine).tolist() == [2] * 100
    assert a.train.fine.dtype == a.train.coarse.dtype == np.int64


def test_synthetic_classes_are_separable_by_their_prototype():
    """Nearest class mean on train classifies test well above chance: the stand-in is learnable."""
    ds = synthetic.generate(SyntheticParams(train_per_class=5, test_per_class=2, noise=24.0, seed=0))
    x_train = ds.train.images.astype(np.float32)
    means = np.stack([x_train[ds.train.fine == c].mean(axis=0) for c in range(100)])
    x_test = ds.test.images.astype(np.float32)
    dist = ((x_test[:, None, :] - means[None]) ** 2).sum(axis=2)
    assert (dist.argmin(axis=1) == ds.test.fine).mean() > 0.5


def test_canonical_raw_round_trip_and_files(tmp_path):
    ds = synthetic.generate(TINY)
    dataset.write_raw(tmp_path, ds)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(dataset.raw_files())
    back = dataset.read_raw(tmp_path)
    np.testing.assert_array_equal(back.train.images, ds.train.images)
    np.testing.assert_array_equal(back.test.coarse, ds.test.coarse)
    assert back.fine_names == ds.fine_names and back.coarse_names == ds.coarse_names


def test_content_sha256_follows_content_not_provenance(tmp_path):
    ds = synthetic.generate(TINY)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        dataset.write_raw(tmp_path / name, ds)
    assert dataset.content_sha256(tmp_path / "a") == dataset.content_sha256(tmp_path / "b")
    changed = synthetic.generate(TINY)
    changed.test.fine[0] = (changed.test.fine[0] + 1) % 100  # one label differs
    (tmp_path / "c").mkdir()
    dataset.write_raw(tmp_path / "c", changed)
    assert dataset.content_sha256(tmp_path / "c") != dataset.content_sha256(tmp_path / "a")


def test_canonical_raw_problems_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(DatasetError) as exc:
        dataset.read_raw(tmp_path)
    assert str(exc.value) == f"{tmp_path / 'train_images.npy'}: file not found (run the ingest stage)"
    dataset.write_raw(tmp_path, synthetic.generate(TINY))
    np.save(tmp_path / "test_fine.npy", np.zeros(3, np.int64))
    with pytest.raises(DatasetError, match="test_images.npy: fine has \\(3,\\) labels for 200 images"):
        dataset.read_raw(tmp_path)
    (tmp_path / "names.json").write_text("[1]")
    np.save(tmp_path / "test_fine.npy", np.zeros(200, np.int64))
    with pytest.raises(DatasetError, match="names.json: must hold lists 'fine' and 'coarse'; rerun the ingest stage"):
        dataset.read_raw(tmp_path)
