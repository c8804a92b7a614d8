"""Drift report: a window of images against the model's reference profile, as HTML, PNG and JSON.

`make drift-report IMAGES=DIR|FILE.npy` (or `python -m ops.drift_report ...`). Images are a
folder of PNG/JPEG files (converted to RGB and resized to 32x32 with PIL's bicubic filter where
they are another size) or a .npy of uint8 (N, 32, 32, 3). With a models/ folder (model.json +
model.pt) the model's confidence, predicted classes and embedding are compared too; without
one, the image features only (the report says which). The whole set is one window, tested as
serve/drift.py's DriftMonitor tests the server's. Writes OUT/drift_report.{html,png,json}.
"""

from __future__ import annotations

import argparse
import html
import io
from pathlib import Path

import numpy as np

from serve.drift import DEFAULT_ALPHA, DriftMonitor, DriftStatus, load_profile
from stages.lib import drift_profile, fsio
from stages.lib.cli import PipelineError

SUFFIXES = {".png", ".jpg", ".jpeg"}


def load_images(path: Path) -> np.ndarray:
    """uint8 (N, 32, 32, 3) from a .npy file or a folder of images; one-line errors."""
    if path.is_file() and path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise PipelineError(f"{path}: not a readable .npy array ({exc})") from None
        try:
            return drift_profile.check_images(arr, str(path))
        except ValueError as exc:
            raise PipelineError(str(exc)) from None
    if not path.is_dir():
        raise PipelineError(f"{path}: not a folder of images or a .npy file (IMAGES=DIR or IMAGES=FILE.npy)")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise PipelineError(f"{path}: no .png/.jpg/.jpeg files")
    return np.stack([_read(p) for p in files])


def _read(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            if rgb.size != (32, 32):
                rgb = rgb.resize((32, 32), Image.Resampling.BICUBIC)
            return np.asarray(rgb, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise PipelineError(f"{path}: not a readable image ({exc})") from None


def assess(profile: dict, images: np.ndarray, model_dir: Path | None, alpha: float) -> tuple[DriftMonitor, DriftStatus]:
    if len(images) < 10:
        raise PipelineError(f"{len(images)} images: a report needs at least 10")
    monitor = DriftMonitor(profile, window=len(images), alpha=alpha)
    probs = emb = None
    if model_dir is not None:
        from stages.lib import model_card
        from stages.profile import outputs, serving_model

        model_card.require(model_dir)
        probs, emb = outputs(serving_model(model_dir)[0], images, 500)
    try:
        monitor.observe(images, probs, emb)
    except ValueError as exc:
        raise PipelineError(f"{exc}: the model and the profile do not match") from None
    return monitor, monitor.status()


def figure(monitor: DriftMonitor, status: DriftStatus) -> bytes:
    """One panel per tested feature: reference vs window histograms, titled with the corrected p."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    window = monitor.window_values()
    names = [n for n in monitor.names if n in status.details["tests"]]
    cols = 4
    fig, axes = plt.subplots((len(names) + cols - 1) // cols, cols, figsize=(4 * cols, 2.6 * ((len(names) + 3) // 4)))
    for ax, name in zip(np.ravel(axes), names):
        test = status.details["tests"][name]
        ref, win = monitor.reference[name], window[name]
        bins = np.histogram_bin_edges(np.concatenate([ref, win]), bins=30)
        ax.hist(ref, bins=bins, density=True, alpha=0.5, label="reference")
        ax.hist(win, bins=bins, density=True, alpha=0.5, label="window")
        ax.set_title(f"{name}: p={test['p_corrected']:.2g}", color="red" if test["drifted"] else "black", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in np.ravel(axes)[len(names) :]:
        ax.axis("off")
    np.ravel(axes)[0].legend(fontsize=7)
    verdict = "DRIFT" if status.drifted else "no drift"
    fig.suptitle(f"{verdict}: score {status.score:.2f} over {status.filled} images (alpha {monitor.alpha})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def page(status: DriftStatus, png_name: str, with_model: bool, images: str) -> str:
    rows = sorted(status.details["tests"].items(), key=lambda kv: kv[1]["p_corrected"])
    cells = "".join(
        f"<tr{' class=drift' if t['drifted'] else ''}><td>{html.escape(n)}</td><td>{t['test']}</td>"
        f"<td>{t['statistic']:.4g}</td><td>{t['p']:.3g}</td><td>{t['p_corrected']:.3g}</td>"
        f"<td>{'yes' if t['drifted'] else 'no'}</td></tr>"
        for n, t in rows
    )
    scope = "image features and the model's outputs" if with_model else "image features only (no model given)"
    verdict = "DRIFT" if status.drifted else "no drift"
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>Drift report</title><style>"
        "body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"
        ".drift{color:#b00;font-weight:bold}</style></head><body>"
        f"<h1>Drift report: {verdict}</h1><p>{status.filled} images from {html.escape(images)}; {scope}. "
        f"Score {status.score:.2f} (-log10 of the smallest Bonferroni-corrected p; drift when p &lt; "
        f"{status.details['alpha']}).</p><table><tr><th>feature</th><th>test</th><th>statistic</th><th>p</th>"
        f"<th>p corrected</th><th>drifted</th></tr>{cells}</table><img src='{png_name}' alt='histograms'>"
        "</body></html>\n"
    )


def report(profile_path: Path, images_path: Path, model_dir: Path | None, out: Path, alpha: float) -> DriftStatus:
    try:
        profile = load_profile(profile_path)
    except ValueError as exc:
        raise PipelineError(str(exc)) from None
    images = load_images(images_path)
    monitor, status = assess(profile, images, model_dir, alpha)
    fsio.write_bytes(out / "drift_report.png", figure(monitor, status))
    fsio.write_bytes(
        out / "drift_report.html", page(status, "drift_report.png", model_dir is not None, str(images_path)).encode()
    )
    summary = {"score": status.score, "drifted": status.drifted, "filled": status.filled, **status.details}
    fsio.write_json(out / "drift_report.json", summary)
    return status


def _main(argv) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--images", required=True, type=Path, help="folder of PNG/JPEG files, or a .npy uint8 (N, 32, 32, 3)"
    )
    ap.add_argument("--profile", default=Path("reports/reference_profile.json"), type=Path)
    ap.add_argument("--model", type=Path, help="models/ folder (model.json + model.pt); omit for image features only")
    ap.add_argument("--out", default=Path("reports/drift"), type=Path)
    ap.add_argument("--alpha", default=DEFAULT_ALPHA, type=float)
    args = ap.parse_args(argv)
    status = report(args.profile, args.images, args.model, args.out, args.alpha)
    verdict = "DRIFT" if status.drifted else "no drift"
    print(f"drift-report: {verdict} (score {status.score:.2f}, {status.filled} images) -> {args.out}/drift_report.html")


def main(argv=None) -> int:
    from stages.lib import cli

    return cli.run("drift-report", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
