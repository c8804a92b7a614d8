"""What the drift monitor compares: per-image features and the reference profile.

One owner for the feature definitions, so the profile stage (reference, on the
test set) and the serving-time monitor (serve/drift.py, on recent inputs)
measure exactly the same things:
- image features of uint8 (N, 32, 32, 3) images, values in [0, 1] units:
  per-channel mean and std, brightness and contrast (mean and std of the luma),
  saturation, two high-frequency energies (gradient, Laplacian: noise raises
  them, blur lowers them) and JPEG blockiness (8x8 grid edges vs the rest);
- model features: confidence (top probability), predicted class, and the
  penultimate-layer embedding projected on a PCA fitted to the reference.
Numpy only: the stage image needs nothing more.
"""

from __future__ import annotations

import numpy as np

PROFILE_VERSION = 1
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, the luma JPEG uses
IMAGE_FEATURES = (
    "mean_r",
    "mean_g",
    "mean_b",
    "std_r",
    "std_g",
    "std_b",
    "brightness",
    "contrast",
    "saturation",
    "gradient",
    "laplacian",
    "blockiness",
)
BLOCK = 8  # JPEG's DCT block size, pixels


def check_images(images: np.ndarray, where: str = "images") -> np.ndarray:
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[1:] != (32, 32, 3)
    ):
        got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise ValueError(f"{where}: expected uint8 (N, 32, 32, 3) images, got {got}")
    return images


def _blockiness(luma: np.ndarray) -> np.ndarray:
    """Mean |step| across the 8x8 grid lines over mean |step| elsewhere, per image (1 = no grid)."""
    dx = np.abs(np.diff(luma, axis=2))  # (N, 32, 31): step between column j and j+1
    dy = np.abs(np.diff(luma, axis=1))  # (N, 31, 32)
    on = np.arange(31) % BLOCK == BLOCK - 1  # steps that cross a block edge (7|8, 15|16, 23|24)
    edge = dx[:, :, on].mean(axis=(1, 2)) + dy[:, on, :].mean(axis=(1, 2))
    inner = dx[:, :, ~on].mean(axis=(1, 2)) + dy[:, ~on, :].mean(axis=(1, 2))
    return (edge + 1e-3) / (inner + 1e-3)  # the epsilon keeps flat images at 1


def image_features(images: np.ndarray) -> dict[str, np.ndarray]:
    """uint8 (N, 32, 32, 3) -> {feature: float64 (N,)}, in the order of IMAGE_FEATURES."""
    x = check_images(images).astype(np.float64) / 255.0
    luma = x @ LUMA  # (N, 32, 32)
    lap = 4 * luma[:, 1:-1, 1:-1] - luma[:, :-2, 1:-1] - luma[:, 2:, 1:-1] - luma[:, 1:-1, :-2] - luma[:, 1:-1, 2:]
    out = {f"mean_{c}": x[..., i].mean(axis=(1, 2)) for i, c in enumerate("rgb")}
    out.update({f"std_{c}": x[..., i].std(axis=(1, 2)) for i, c in enumerate("rgb")})
    out["brightness"] = luma.mean(axis=(1, 2))
    out["contrast"] = luma.std(axis=(1, 2))
    out["saturation"] = (x.max(axis=3) - x.min(axis=3)).mean(axis=(1, 2))
    out["gradient"] = np.abs(np.diff(luma, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(luma, axis=2)).mean(axis=(1, 2))
    out["laplacian"] = np.abs(lap).mean(axis=(1, 2))
    out["blockiness"] = _blockiness(luma)
    return {name: out[name] for name in IMAGE_FEATURES}


def fit_pca(embedding: np.ndarray, components: int) -> dict:
    """PCA of (N, D) embeddings: mean (D,), components (k, D) unit rows, explained variance ratios (k,)."""
    emb = np.asarray(embedding, dtype=np.float64)
    mean = emb.mean(axis=0)
    _, s, vt = np.linalg.svd(emb - mean, full_matrices=False)
    k = min(components, vt.shape[0])
    signs = np.sign(vt[:k, np.argmax(np.abs(vt[:k]), axis=1)].diagonal())  # fixed sign: reproducible bytes
    var = s**2
    return {
        "mean": mean.tolist(),
        "components": (vt[:k] * signs[:, None]).tolist(),
        "explained_variance_ratio": (var[:k] / max(var.sum(), 1e-12)).tolist(),
    }


def project(embedding: np.ndarray, pca: dict) -> dict[str, np.ndarray]:
    """(N, D) embeddings -> {pca_i: (N,)} on the profile's PCA."""
    comps = np.asarray(pca["components"], dtype=np.float64)
    if embedding.ndim != 2 or embedding.shape[1] != comps.shape[1]:
        raise ValueError(f"embedding: expected (N, {comps.shape[1]}), got {embedding.shape}")
    z = (np.asarray(embedding, dtype=np.float64) - np.asarray(pca["mean"])) @ comps.T
    return {f"pca_{i}": z[:, i] for i in range(z.shape[1])}


def model_features(probs: np.ndarray, embedding: np.ndarray | None, pca: dict | None) -> dict[str, np.ndarray]:
    """Confidence (top probability) and, with an embedding and a PCA, its projection."""
    out = {"confidence": np.asarray(probs, dtype=np.float64).max(axis=1)}
    if embedding is not None and pca is not None:
        out.update(project(embedding, pca))
    return out


def _rounded(values: np.ndarray) -> list[float]:
    return [float(f"{v:.5g}") for v in values]  # 5 significant digits: far finer than any test resolves


def summary(values: np.ndarray) -> dict[str, float]:
    q = np.quantile(values, [0.05, 0.5, 0.95])
    return {"mean": float(values.mean()), "std": float(values.std()), "p05": q[0], "p50": q[1], "p95": q[2]}


def build_profile(
    images: np.ndarray, probs: np.ndarray, embedding: np.ndarray, class_names: list[str], pca_components: int
) -> dict:
    """The reference profile of a set of images and the model's outputs on them (JSON-ready)."""
    check_images(images)
    if probs.shape != (len(images), len(class_names)) or len(embedding) != len(images):
        raise ValueError(f"probs {probs.shape} / embedding {embedding.shape} do not match {len(images)} images")
    pca = fit_pca(embedding, pca_components)
    features = {**image_features(images), **model_features(probs, embedding, pca)}
    counts = np.bincount(probs.argmax(axis=1), minlength=len(class_names))
    return {
        "version": PROFILE_VERSION,
        "images": len(images),
        "features": {name: _rounded(v) for name, v in features.items()},
        "summary": {name: {k: round(float(x), 6) for k, x in summary(v).items()} for name, v in features.items()},
        "classes": {"names": list(class_names), "counts": counts.tolist()},
        "pca": {
            k: [_rounded(np.asarray(row)) for row in v] if k == "components" else _rounded(np.asarray(v))
            for k, v in pca.items()
        },
        "embedding_dim": int(embedding.shape[1]),
    }


def check_profile(profile: dict, where: str) -> dict:
    """One-line errors for a profile that is not one this code wrote."""
    if not isinstance(profile, dict) or profile.get("version") != PROFILE_VERSION:
        got = profile.get("version") if isinstance(profile, dict) else type(profile).__name__
        raise ValueError(
            f"{where}: not a reference profile of version {PROFILE_VERSION} (got {got!r}); rerun `dvc repro profile`"
        )
    for key in ("features", "classes", "pca"):
        if key not in profile:
            raise ValueError(f"{where}: reference profile has no '{key}'; rerun `dvc repro profile`")
    missing = [f for f in (*IMAGE_FEATURES, "confidence") if f not in profile["features"]]
    if missing:
        raise ValueError(f"{where}: reference profile lacks feature '{missing[0]}'; rerun `dvc repro profile`")
    return profile
