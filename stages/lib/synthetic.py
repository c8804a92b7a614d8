"""A learnable stand-in for CIFAR-100, generated in its exact format.

Each of the 100 fine classes gets a prototype: a 6x6 grid of random colours
blown up to 36x36 pixels. An image is a random 32x32 window of its prototype
(up to +-2 px jitter), a brightness shift and Gaussian pixel noise, so classes
are separable yet no two images are alike. Fine class c belongs to coarse
class c // 5, five fine classes per superclass as in CIFAR-100.
"""

from __future__ import annotations

import numpy as np

from stages.lib.dataset import RawDataset, Split
from stages.lib.params import SyntheticParams

NUM_FINE, NUM_COARSE = 100, 20
_GRID, _CELL, _SIZE, _JITTER = 6, 6, 32, 2


def _prototypes(rng: np.random.Generator) -> np.ndarray:
    """float32 (100, 3, 36, 36) class prototypes in uint8 levels."""
    grid = rng.uniform(30, 225, size=(NUM_FINE, 3, _GRID, _GRID)).astype(np.float32)
    return grid.repeat(_CELL, axis=2).repeat(_CELL, axis=3)


def _render(protos: np.ndarray, labels: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, 3072): jittered, shifted, noisy windows of each label's prototype."""
    n = len(labels)
    offsets = rng.integers(0, 2 * _JITTER + 1, size=(n, 2))
    shift = rng.uniform(-20, 20, size=(n, 1, 1, 1)).astype(np.float32)
    out = np.empty((n, 3, _SIZE, _SIZE), dtype=np.float32)
    for i, (label, (dy, dx)) in enumerate(zip(labels, offsets)):
        out[i] = protos[label, :, dy : dy + _SIZE, dx : dx + _SIZE]
    out += shift + noise * rng.standard_normal(size=out.shape, dtype=np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(n, -1)


def _split(protos: np.ndarray, per_class: int, noise: float, rng: np.random.Generator) -> Split:
    fine = rng.permutation(np.repeat(np.arange(NUM_FINE, dtype=np.int64), per_class))
    return Split(_render(protos, fine, noise, rng), fine, fine // (NUM_FINE // NUM_COARSE))


def generate(cfg: SyntheticParams) -> RawDataset:
    """Deterministic for a given seed: same params, same bytes."""
    rng = np.random.default_rng(cfg.seed)
    protos = _prototypes(rng)
    return RawDataset(
        train=_split(protos, cfg.train_per_class, cfg.noise, rng),
        test=_split(protos, cfg.test_per_class, cfg.noise, rng),
        fine_names=[f"class_{i:03d}" for i in range(NUM_FINE)],
        coarse_names=[f"superclass_{i:02d}" for i in range(NUM_COARSE)],
    )
