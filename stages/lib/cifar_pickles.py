"""The official archive's format: CIFAR-100's "python version" layout,
`cifar-100-python/{train,test,meta}` pickles with `data` uint8 (N, 3072) as red,
green, blue 32x32 planes. ingest reads it; tests and benches write it to build archives.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from stages.lib import fsio
from stages.lib.dataset import ARCHIVE_DIR, PIXELS, SPLITS, DatasetError, RawDataset, Split


def write_pickles(root: str | Path, ds: RawDataset) -> None:
    """Write `ds` in the official archive layout under root/cifar-100-python/ (to build archives)."""
    out = Path(root) / ARCHIVE_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        split: Split = getattr(ds, name)
        record = {
            "filenames": [f"{name}_{i:05d}.png" for i in range(len(split.fine))],
            "batch_label": f"{name} batch",
            "fine_labels": split.fine.tolist(),
            "coarse_labels": split.coarse.tolist(),
            "data": np.ascontiguousarray(split.images, dtype=np.uint8),
        }
        fsio.write_bytes(out / name, pickle.dumps(record, protocol=4))
    meta = {"fine_label_names": ds.fine_names, "coarse_label_names": ds.coarse_names}
    fsio.write_bytes(out / "meta", pickle.dumps(meta, protocol=4))


def _load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except Exception as exc:
        raise DatasetError(f"{path}: not a CIFAR-100 pickle ({exc})") from None


def _field(record: dict, path: Path, key: str):
    if key not in record:
        raise DatasetError(f"{path}: missing field '{key}'")
    return record[key]


def _read_pickled_split(path: Path) -> Split:
    record = _load_pickle(path)
    images = np.asarray(_field(record, path, "data"))
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != PIXELS:
        raise DatasetError(f"{path}: field 'data' must be uint8 (N, {PIXELS}), got {images.dtype} {images.shape}")
    fine = np.asarray(_field(record, path, "fine_labels"), dtype=np.int64)
    coarse = np.asarray(_field(record, path, "coarse_labels"), dtype=np.int64)
    for key, labels in (("fine_labels", fine), ("coarse_labels", coarse)):
        if labels.shape != (len(images),):
            raise DatasetError(f"{path}: field '{key}' has {labels.shape} labels for {len(images)} images")
    return Split(images, fine, coarse)


def read_pickles(root: str | Path) -> RawDataset:
    """An unpacked official archive: root/cifar-100-python/{train,test,meta}."""
    base = Path(root) / ARCHIVE_DIR
    meta_path = base / "meta"
    meta = _load_pickle(meta_path)
    return RawDataset(
        train=_read_pickled_split(base / "train"),
        test=_read_pickled_split(base / "test"),
        fine_names=list(_field(meta, meta_path, "fine_label_names")),
        coarse_names=list(_field(meta, meta_path, "coarse_label_names")),
    )
