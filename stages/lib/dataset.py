"""The on-disk dataset formats the pipeline speaks.

Archive: the CIFAR-100 "python version" layout, `cifar-100-python/{train,test,meta}`
pickles with `data` uint8 (N, 3072) as red, green, blue 32x32 planes. Only ingest
reads it (and tests and benches write it, to build archives).
Raw (`data/raw`, ingest's output): the same content addressed by content alone:
`{train,test}_{images,fine,coarse}.npy` (uint8 (N, 3072); int64 (N,)) and
`names.json`, written deterministically, so two archives with the same pixels,
labels, names and order give byte-identical files and one DVC hash, whatever
their pickle protocol, compression or provenance. `content_sha256` fingerprints it.
Processed: one `.npy` per array (uint8 images (N, 3, 32, 32), int64 labels) plus
`meta.json`; `.npy` bytes depend only on the arrays, so outputs are reproducible
and load with mmap in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.lib import fsio
from stages.lib.cli import PipelineError

ARCHIVE_DIR = "cifar-100-python"  # the folder the official archive unpacks to
RAW_ARRAYS = ("images", "fine", "coarse")
NAMES_FILE = "names.json"
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


def raw_files() -> list[str]:
    """The canonical raw folder's files, in the order content_sha256 hashes them."""
    return [f"{s}_{a}.npy" for s in SPLITS for a in RAW_ARRAYS] + [NAMES_FILE]


def write_raw(root: str | Path, ds: RawDataset) -> None:
    """Write `ds` in the canonical raw format into root (which must exist)."""
    out = Path(root)
    for name in SPLITS:
        split: Split = getattr(ds, name)
        for key, arr, dtype in (
            ("images", split.images, np.uint8),
            ("fine", split.fine, np.int64),
            ("coarse", split.coarse, np.int64),
        ):
            np.save(out / f"{name}_{key}.npy", np.ascontiguousarray(arr, dtype=dtype), allow_pickle=False)
    names = {"fine": list(ds.fine_names), "coarse": list(ds.coarse_names)}
    fsio.write_bytes(out / NAMES_FILE, (json.dumps(names, indent=1) + "\n").encode())


def content_sha256(root: str | Path) -> str:
    """sha256 over the canonical files in raw_files() order: the dataset's content fingerprint."""
    digest = hashlib.sha256()
    for name in raw_files():
        with open(Path(root) / name, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


def read_raw(root: str | Path) -> RawDataset:
    """The canonical raw folder (ingest's output), arrays memory-mapped."""
    base = Path(root)
    splits = {}
    for name in SPLITS:
        parts = {key: _load_npy(base / f"{name}_{key}.npy", dtype, ndim, "ingest") for key, dtype, ndim in _RAW_SPEC}
        splits[name] = _check_split(Split(parts["images"], parts["fine"], parts["coarse"]), base / f"{name}_images.npy")
    path = base / NAMES_FILE
    try:
        names = fsio.read_json(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found (run the ingest stage)") from None
    except ValueError as exc:
        raise DatasetError(f"{path}: not JSON ({exc}); rerun the ingest stage") from None
    if not isinstance(names, dict) or not all(isinstance(names.get(k), list) for k in ("fine", "coarse")):
        raise DatasetError(f"{path}: must hold lists 'fine' and 'coarse'; rerun the ingest stage")
    return RawDataset(splits["train"], splits["test"], names["fine"], names["coarse"])


_RAW_SPEC = (("images", "uint8", 2), ("fine", "int64", 1), ("coarse", "int64", 1))


def _check_split(split: Split, path: Path) -> Split:
    if split.images.shape[1:] != (PIXELS,):
        raise DatasetError(f"{path}: images must be uint8 (N, {PIXELS}), got {split.images.shape}")
    for key, labels in (("fine", split.fine), ("coarse", split.coarse)):
        if labels.shape != (len(split.images),):
            raise DatasetError(f"{path}: {key} has {labels.shape} labels for {len(split.images)} images")
    return split


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


@dataclass(frozen=True)
class Arrays:
    x: np.ndarray  # uint8 (N, 3, 32, 32)
    y: np.ndarray  # int64 (N,) fine labels
    coarse: np.ndarray  # int64 (N,)


def save_arrays(root: Path, name: str, arrays: Arrays) -> None:
    for key in ("x", "y", "coarse"):
        np.save(root / f"{name}_{key}.npy", getattr(arrays, key), allow_pickle=False)


def _load_npy(path: Path, dtype: str, ndim: int, stage: str = "preprocess") -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found (run the {stage} stage)") from None
    except (ValueError, OSError, EOFError) as exc:  # truncated or not .npy at all
        raise DatasetError(f"{path}: not a readable .npy array ({exc}); rerun the {stage} stage") from None
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
