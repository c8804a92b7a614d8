"""Claim: on real CIFAR-100 the drift monitor (serve/drift.py) raises at most 5% false alarms on
windows of 500 clean test images and catches at least 95% of windows of 500 corrupted ones at
CIFAR-100-C severity 3.

Method: a small net is trained on the real training split through the real stages
(bench/_drift_model.py; kept in --workdir, so later runs reuse it). The test split is halved:
the even-indexed 5000 images give the reference profile (the profile stage's own code), the
odd-indexed 5000 give the windows, so no window image is in the reference (clean windows are
also drawn the other way round, half of them, so the false-alarm rate does not hang on one
split). Each window is 500
images drawn without replacement from that half (clean: --clean-windows of them), or from the
first --pool images of it corrupted (--windows per corruption and severity) with Hendrycks &
Dietterich's CIFAR-10-C recipes and severities (gaussian noise, gaussian blur, brightness,
contrast, JPEG). A window is flagged when the monitor's Bonferroni-corrected smallest p is
below alpha (the monitor's default, 0.01; rates at 0.05 are reported too). Baseline, on the same
windows: a KS test of the model's confidence alone, the usual "watch the confidence" monitor;
also reported: the monitor with image features only (no model outputs).
Prints one JSON line: false_alarm_rate, detection_rate (severity 3, all corruptions), window,
per-corruption and per-severity rates, the baseline's, and ratio = detection_rate / baseline's.
The data comes from --data or $CIFAR100_DIR (a folder holding cifar-100-python.tar.gz), default
../shared/cifar100 next to the project.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench._drift_model import ensure_model
from serve.drift import DEFAULT_ALPHA, DriftMonitor, ks_pvalue
from stages.lib import drift_profile, fsio
from stages.lib.dataset import load_arrays
from stages.profile import outputs, serving_model

ROOT = Path(__file__).resolve().parent.parent

# Hendrycks & Dietterich (ICLR 2019), make_cifar_c.py: the CIFAR parameters, severities 1..5.
SEVERITY = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],  # std, [0, 1] units
    "gaussian_blur": [0.4, 0.6, 0.7, 0.8, 1.0],  # sigma, px
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],  # added to HSV value
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],  # factor about each image's channel means
    "jpeg": [80, 65, 58, 50, 40],  # quality
}


def corrupt(images: np.ndarray, kind: str, severity: int, seed: int = 0) -> np.ndarray:
    """uint8 (N, 32, 32, 3) -> the same images corrupted at severity 1..5."""
    c = SEVERITY[kind][severity - 1]
    x = images.astype(np.float64) / 255.0
    if kind == "gaussian_noise":
        x = x + np.random.default_rng(seed).normal(0, c, size=x.shape)
    elif kind == "gaussian_blur":
        from scipy.ndimage import gaussian_filter

        x = gaussian_filter(x, sigma=(0, c, c, 0))
    elif kind == "brightness":
        from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

        hsv = rgb_to_hsv(x)
        hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
        x = hsv_to_rgb(hsv)
    elif kind == "contrast":
        means = x.mean(axis=(1, 2), keepdims=True)
        x = (x - means) * c + means
    elif kind == "jpeg":
        return np.stack([_jpeg(img, c) for img in images])
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


class Windows:
    """Feature rows of one half of the test set under one condition, and the p-values of its windows."""

    def __init__(self, monitor: DriftMonitor, images: np.ndarray, probs: np.ndarray, emb: np.ndarray):
        self.rows = monitor.features(images, probs, emb)
        self.classes = probs.argmax(axis=1)
        self.monitor = monitor

    def pvalues(self, draws: list[np.ndarray]) -> dict[str, list[float]]:
        """Per window, the smallest Bonferroni-corrected p of the monitor, of the monitor on image
        features only, and the confidence-only baseline's KS p: flagged at alpha when p < alpha."""
        mon, out = self.monitor, {"monitor": [], "image_only": [], "baseline": []}
        image_cols = [mon.names.index(n) for n in drift_profile.IMAGE_FEATURES]
        conf = mon.names.index("confidence")
        for idx in draws:
            mon.reset()
            mon.add(self.rows[idx], self.classes[idx])
            out["monitor"].append(min_p(mon.status()))
            rows = np.full_like(self.rows[idx], np.nan)
            rows[:, image_cols] = self.rows[idx][:, image_cols]
            mon.reset()
            mon.add(rows, np.full(len(idx), -1))
            out["image_only"].append(min_p(mon.status()))
            out["baseline"].append(ks_pvalue(self.rows[idx, conf], mon.reference["confidence"])[1])
        return out


def min_p(status) -> float:
    return min((t["p_corrected"] for t in status.details["tests"].values()), default=1.0)


def rate(ps: list[float], alpha: float) -> float:
    return round(float(np.mean(np.asarray(ps) < alpha)), 4) if ps else float("nan")


def run(args) -> dict:
    archive = Path(args.data) / "cifar-100-python.tar.gz"
    work = ensure_model(Path(args.workdir), archive, args.epochs)
    test = load_arrays(work / "data" / "processed", "test")
    images = np.ascontiguousarray(np.asarray(test.x).transpose(0, 2, 3, 1))
    serving, card = serving_model(work / "models")
    halves = [images[0::2], images[1::2]]
    outs = [outputs(serving, half, args.batch) for half in halves]
    rng = np.random.default_rng(args.seed)
    draw = lambda n, size: [rng.choice(size, args.window, replace=False) for _ in range(n)]  # noqa: E731
    clean: dict[str, list[float]] = {}
    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    # Both ways round (reference = even half, windows = odd half, and back), so the false-alarm
    # rate does not hang on how one half happens to differ from the other; corruptions on the first.
    for split, (ref, win) in enumerate(((0, 1), (1, 0))):
        profile = drift_profile.build_profile(halves[ref], *outs[ref], card.fine_names, args.pca)
        monitor = DriftMonitor(profile, window=args.window)
        found = Windows(monitor, halves[win], *outs[win]).pvalues(draw(args.clean_windows // 2, len(halves[win])))
        for key, ps in found.items():
            clean.setdefault(key, []).extend(ps)
        if split:
            break
        pool = halves[win][: max(args.pool, args.window)]
        for kind in SEVERITY:
            for sev in args.severities:
                bad = corrupt(pool, kind, sev, args.seed)
                probs, emb = outputs(serving, bad, args.batch)
                found = Windows(monitor, bad, probs, emb).pvalues(draw(args.windows, len(pool)))
                table.setdefault(kind, {})[str(sev)] = found
    last = fsio.read_json(work / "reports" / "train_history.json")[-1]
    model = {"architecture": card.architecture, "epochs": last["epoch"], "val_acc": round(last["val_acc"], 4)}
    return summarise(args, clean, table, model)


def _rates(args, clean: dict, table: dict, alpha: float) -> dict:
    sev3 = {kind: rows["3"] for kind, rows in table.items() if "3" in rows}
    det = lambda key: round(float(np.mean([rate(r[key], alpha) for r in sev3.values()])), 4)  # noqa: E731
    return {
        "false_alarm_rate": rate(clean["monitor"], alpha),
        "detection_rate": det("monitor") if sev3 else None,
        "image_only_false_alarm_rate": rate(clean["image_only"], alpha),
        "image_only_detection_rate": det("image_only") if sev3 else None,
        "baseline_false_alarm_rate": rate(clean["baseline"], alpha),
        "baseline_detection_rate": det("baseline") if sev3 else None,
    }


def summarise(args, clean: dict, table: dict, model: dict) -> dict:
    main = _rates(args, clean, table, args.alpha)
    detection, baseline = main["detection_rate"], main["baseline_detection_rate"]
    return {
        "bench": "drift",
        "false_alarm_rate": main["false_alarm_rate"],
        "detection_rate": detection,
        "window": args.window,
        "alpha": args.alpha,
        "clean_windows": len(clean["monitor"]),
        "windows_per_cell": args.windows,
        "pool_per_cell": args.pool,
        "detection_by_corruption_sev3": {k: rate(r["3"]["monitor"], args.alpha) for k, r in table.items() if "3" in r},
        "detection_by_severity": {
            s: round(float(np.mean([rate(table[k][s]["monitor"], args.alpha) for k in table])), 4)
            for s in map(str, args.severities)
        },
        **{k: v for k, v in main.items() if k not in ("false_alarm_rate", "detection_rate")},
        "baseline": "KS on model confidence alone",
        "ratio": round(detection / baseline, 3) if baseline else None,
        "by_alpha": {str(a): _rates(args, clean, table, a) for a in (0.05, 0.01)},
        "table": {
            k: {s: {key: rate(ps, args.alpha) for key, ps in cell.items()} for s, cell in rows.items()}
            for k, rows in table.items()
        },
        "model": model,
    }


def main() -> None:
    default_data = os.environ.get("CIFAR100_DIR") or str(ROOT.parent / "shared" / "cifar100")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=default_data, help="folder with cifar-100-python.tar.gz")
    ap.add_argument("--workdir", default=str(ROOT / ".smoke" / "drift-bench"), help="kept: the trained model")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--window", type=int, default=500)
    ap.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    ap.add_argument("--clean-windows", type=int, default=400, help="half with each half as the reference")
    ap.add_argument("--windows", type=int, default=20, help="windows per corruption and severity")
    ap.add_argument("--pool", type=int, default=2000, help="images corrupted per corruption and severity")
    ap.add_argument("--severities", type=int, nargs="+", default=[1, 2, 3, 4, 5], choices=range(1, 6))
    ap.add_argument("--pca", type=int, default=8)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    archive = Path(args.data) / "cifar-100-python.tar.gz"
    if not archive.is_file():  # `make bench` runs every bench: say why this one has no figures
        print(f"bench/drift.py: {archive}: file not found; pass --data DIR or set CIFAR100_DIR", file=sys.stderr)
        print(json.dumps({"bench": "drift", "skipped": f"no {archive}"}))
        return
    began = time.perf_counter()
    result = run(args)
    result["seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
