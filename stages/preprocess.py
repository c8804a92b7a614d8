"""preprocess: raw pickles -> compact uint8 arrays, stratified split, train-only stats.

Output dir holds `{train,val,test}_{x,y,coarse}.npy` (images uint8 (N, 3, 32, 32))
and `meta.json`: per-channel mean/std in [0, 1] units from the train split
only (so validation and test never leak into normalisation), class names and
the fine -> coarse map.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from stages.lib import cli, fsio, params
from stages.lib.dataset import IMAGE_SHAPE, Arrays, Split, read_raw, save_arrays


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices; each class gives round(fraction * count) to val."""
    rng = np.random.default_rng(seed)
    val = [
        rng.permutation(idx)[: round(fraction * len(idx))]
        for idx in (np.flatnonzero(labels == c) for c in np.unique(labels))
    ]
    val_idx = np.sort(np.concatenate(val)) if val else np.empty(0, dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx


def _pair_squares() -> np.ndarray:
    """uint32 table: entry lo + 256 * hi holds lo**2 + hi**2, for a uint16 view of two uint8 pixels."""
    v = np.arange(256, dtype=np.uint32)
    return (v[None, :] ** 2 + v[:, None] ** 2).ravel()


def _sums(chunk: np.ndarray, pair_squares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel sums of the pixels and of their squares, uint64, of uint8 (B, C, H, W)."""
    flat = np.ascontiguousarray(chunk).reshape(*chunk.shape[:2], -1)  # (B, C, H*W)
    if flat.shape[2] % 2:  # a zero pixel pads each plane to an even length: adds nothing
        flat = np.pad(flat, ((0, 0), (0, 0), (0, 1)))
    squares = np.take(pair_squares, flat.view(np.uint16)).sum(axis=(0, 2), dtype=np.uint64)
    return flat.sum(axis=(0, 2), dtype=np.uint64), squares


def channel_stats(x: np.ndarray, chunk: int = 2048) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 (N, C, H, W) images, in [0, 1] units.

    Exact integer sums of pixels and of their squares: a 64K-entry table squares
    two pixels per lookup, with no float copy of the images and no rounding.
    Chunks run on a thread per core (numpy drops the GIL in take and sum).
    """
    table = _pair_squares()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        parts = list(pool.map(lambda s: _sums(x[s : s + chunk], table), range(0, len(x), chunk)))
    total = sum((p[0] for p in parts), np.zeros(x.shape[1], dtype=np.uint64))
    squares = sum((p[1] for p in parts), np.zeros(x.shape[1], dtype=np.uint64))
    n = len(x) * x.shape[2] * x.shape[3]
    mean = total / n / 255.0
    var = np.maximum(squares / n / 255.0**2 - mean**2, 0.0)  # a flat channel can dip below 0 by rounding
    return mean.tolist(), np.sqrt(var).tolist()


def _arrays(split: Split, idx: np.ndarray | None = None) -> Arrays:
    sel = slice(None) if idx is None else idx
    return Arrays(split.images[sel].reshape(-1, *IMAGE_SHAPE), split.fine[sel], split.coarse[sel])


def preprocess(raw: Path, out: Path, cfg: params.PreprocessParams) -> dict:
    ds = read_raw(raw)
    train_idx, val_idx = stratified_split(ds.train.fine, cfg.val_fraction, cfg.seed)
    parts = {
        "train": _arrays(ds.train, train_idx),
        "val": _arrays(ds.train, val_idx),
        "test": _arrays(ds.test),
    }
    mean, std = channel_stats(parts["train"].x)
    fine_to_coarse = np.zeros(len(ds.fine_names), dtype=np.int64)
    fine_to_coarse[ds.train.fine] = ds.train.coarse
    meta = {
        "mean": mean,
        "std": std,
        "fine_names": ds.fine_names,
        "coarse_names": ds.coarse_names,
        "fine_to_coarse": fine_to_coarse.tolist(),
        "sizes": {name: int(len(a.y)) for name, a in parts.items()},
    }
    with fsio.atomic_dir(out) as scratch:
        for name, arrays in parts.items():
            save_arrays(scratch, name, arrays)
        fsio.write_json(scratch / "meta.json", meta)
    return meta


def _main(argv) -> None:
    args = cli.parser(__doc__.splitlines()[0], "raw", "out").parse_args(argv)
    cfg = params.load(args.params)
    fsio.check_writable(args.out)
    meta = preprocess(Path(args.raw), Path(args.out), cfg.preprocess)
    print(f"preprocess: {meta['sizes']} -> {args.out}")


def main(argv=None) -> int:
    return cli.run("preprocess", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
