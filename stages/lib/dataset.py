"""The two on-disk dataset formats the pipeline speaks.

Raw: the CIFAR-100 "python version" layout, `cifar-100-python/{train,test,meta}`
pickles with `data` uint8 (N, 3072) as red, green, blue 32x32 planes.
Processed: one `.npy` per array (uint8 images (N, 3, 32, 32), int64 labels) plus
`meta.json`; `.npy` bytes depend only on the arrays, so outputs are reproducible
and load with mmap in milliseconds.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.lib import fsio
from stages.lib.cli import PipelineError

RAW_DIR = "cifar-100-python"
SPLITS = ("train", "test")
IMAGE_SHAPE = (3, 32, 32)
PIXELS = 3 * 32 * 32


class DatasetError(PipelineError):
    """A dataset file is missing, unreadable or not in the expected format."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (N, 3072), CIFAR plane order
    fine: np.ndarray  # int64 (N,)
    coarse: np.ndarray  # int64 (N,)


@dataclass(frozen=True)
class RawDataset:
    train: Split
    test: Split
    fine_names: list[str]
    coarse_names: list[str]


def write_raw(root: str | Path, ds: RawDataset) -> None:
    """Write `ds` in the official layout under root/cifar-100-python/."""
    out = Path(root) / RAW_DIR
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


def _read_split(path: Path) -> Split:
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


def read_raw(root: str | Path) -> RawDataset:
    base = Path(root) / RAW_DIR
    meta_path = base / "meta"
    meta = _load_pickle(meta_path)
    return RawDataset(
        train=_read_split(base / "train"),
        test=_read_split(base / "test"),
        fine_names=list(_field(meta, meta_path, "fine_label_names")),
        coarse_names=list(_field(meta, meta_path, "coarse_label_names")),
    )


@dataclass(frozen=True)
class Arrays:
    x: np.ndarray  # uint8 (N, 3, 32, 32)
    y: np.ndarray  # int64 (N,) fine labels
    coarse: np.ndarray  # int64 (N,)


def save_arrays(root: Path, name: str, arrays: Arrays) -> None:
    for key in ("x", "y", "coarse"):
        np.save(root / f"{name}_{key}.npy", getattr(arrays, key), allow_pickle=False)


def _load_npy(path: Path, dtype: str, ndim: int) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found (run the preprocess stage)") from None
    except (ValueError, OSError, EOFError) as exc:  # truncated or not .npy at all
        raise DatasetError(f"{path}: not a readable .npy array ({exc}); rerun the preprocess stage") from None
    if arr.dtype != np.dtype(dtype) or arr.ndim != ndim:
        raise DatasetError(f"{path}: expected {dtype} with {ndim} dims, got {arr.dtype} {arr.shape}")
    return arr


def load_arrays(root: str | Path, name: str) -> Arrays:
    """Memory-mapped: nothing is read until a slice is touched."""
    spec = {"x": ("uint8", 4), "y": ("int64", 1), "coarse": ("int64", 1)}
    parts = {k: _load_npy(Path(root) / f"{name}_{k}.npy", *spec[k]) for k in spec}
    if parts["x"].shape[1:] != IMAGE_SHAPE or not len(parts["x"]) == len(parts["y"]) == len(parts["coarse"]):
        raise DatasetError(
            f"{Path(root)}: {name}_x.npy {parts['x'].shape}, {name}_y.npy {parts['y'].shape} "
            f"and {name}_coarse.npy {parts['coarse'].shape} do not match"
        )
    return Arrays(**parts)


def load_meta(root: str | Path) -> dict:
    path = Path(root) / "meta.json"
    try:
        return fsio.read_json(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found (run the preprocess stage)") from None
