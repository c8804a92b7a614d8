"""profile: the drift monitor's reference profile of the trained model on the test split.

Samples `profile.images` test images (seeded), runs the serving model on them
(raw uint8 in, as a server sees them) and writes (path from dvc.yaml) the
distributions serve/drift.py compares recent inputs with: image features,
confidence, predicted-class counts and a PCA of the penultimate-layer
embedding (stages/lib/drift_profile.py). register logs it with the model as
`extra_files/reference_profile.json`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.lib import cli, drift_profile, fsio, model_card, params
from stages.lib.dataset import load_arrays


def sample(n_total: int, n: int, seed: int) -> np.ndarray:
    """Sorted indices of min(n, n_total) distinct items, the same for the same seed."""
    if n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


def serving_model(model_dir: Path):
    """(ServingModel exactly as register logs it, on the CPU, in eval mode; the checked card)."""
    from stages.lib import model

    card, net = model_card.build(model_dir)
    return model.ServingModel(net, card.mean, card.std).eval(), card


def outputs(serving, images: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 32, 32, 3) -> probs (N, C) float32, embedding (N, D) float32, in batches."""
    import torch

    probs, emb = [], []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            p, e = serving.forward_with_embedding(
                torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            )
            probs.append(p.numpy())
            emb.append(e.float().numpy())
    return np.concatenate(probs), np.concatenate(emb)


def profile(cfg: params.Params, model_dir: Path, data_dir: Path, out: Path) -> dict:
    fsio.remove(out)
    model_card.require(model_dir)
    test = load_arrays(data_dir, "test")
    idx = sample(len(test.x), cfg.profile.images, cfg.profile.seed)
    images = np.ascontiguousarray(np.asarray(test.x[idx]).transpose(0, 2, 3, 1))  # NCHW -> NHWC, as served
    serving, card = serving_model(model_dir)
    probs, emb = outputs(serving, images, cfg.profile.batch_size)
    result = drift_profile.build_profile(images, probs, emb, card.fine_names, cfg.profile.pca_components)
    result["source"] = {"split": "test", "seed": cfg.profile.seed, "model_sha256": model_card.weights_sha256(model_dir)}
    fsio.write_json(out, result)
    return result


def _main(argv) -> None:
    args = cli.parser(__doc__.splitlines()[0], "model", "data", "out").parse_args(argv)
    cfg = params.load(args.params)
    result = profile(cfg, Path(args.model), Path(args.data), Path(args.out))
    print(f"profile: {result['images']} test images, {len(result['features'])} features -> {args.out}")


def main(argv=None) -> int:
    return cli.run("profile", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
