"""Draw docs/figures/architecture.png, the picture at the top of README.md.

Run from the repository root after a change to the layout: `.venv/bin/python docs/figures/architecture.py`.
Arrows point from a caller to what it calls (the layer contract of docs/architecture.md).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

OUT = Path(__file__).with_name("architecture.png")

STAGE_ORDER = "ingest > validate > preprocess > train > evaluate, profile > register"

# name: (x, y, width, height, face colour, title, subtitle); units: figure data coordinates (0..16 x 0..10)
BOXES = {
    "user": (0.3, 8.6, 4.3, 1.1, "#e8eaf6", "you: make smoke / run / test", "the Makefile: make help"),
    "flows": (4.9, 8.6, 3.3, 1.1, "#e8eaf6", "flows/", "Prefect, Airflow: nightly, on drift"),
    "sweep": (8.5, 8.6, 3.0, 1.1, "#e8eaf6", "sweep/", "a grid on DVC's queue"),
    "ops": (12.5, 8.6, 3.2, 1.1, "#e8eaf6", "ops/", "push/pull, git sync, reproduce"),
    "dvc": (0.3, 6.9, 11.2, 1.1, "#fff3e0", "DVC: dvc.yaml + params.yaml", "the orchestrator: reruns what changed"),
    "runner": (0.3, 5.2, 11.2, 1.1, "#fce4ec", "runner/   python -m runner NAME", "local, or a container per stage"),
    "stages": (0.3, 3.5, 11.2, 1.1, "#e8f5e9", "stages/   python -m stages NAME", STAGE_ORDER),
    "lib": (0.3, 1.8, 11.2, 1.1, "#e8f5e9", "stages/lib/", "params, model card, data, model, loop, tracking, registry"),
    "mlflow": (12.5, 3.5, 3.2, 1.1, "#e3f2fd", "MLflow", "runs; registry: champion"),
    "remote": (12.5, 6.9, 3.2, 1.1, "#e3f2fd", "DVC remote", "local folder, DagsHub, S3"),
    "serve": (12.5, 1.8, 3.2, 1.1, "#e3f2fd", "serve/", "FastAPI: the champion"),
    "monitor": (12.5, 0.1, 3.2, 1.1, "#e3f2fd", "monitoring/", "Prometheus, Grafana"),
}

# (from, to, label): each arrow leaves the bottom of `from` (or its side, for boxes on one row)
ARROWS = [
    ("user", "dvc", ""),
    ("flows", "dvc", ""),
    ("sweep", "dvc", ""),
    ("ops", "remote", "push / pull"),
    ("dvc", "runner", "each stage's cmd"),
    ("runner", "stages", ""),
    ("stages", "lib", "imports only stages/lib"),
    ("stages", "mlflow", "register"),
    ("mlflow", "serve", "alias"),
    ("serve", "monitor", "/metrics"),
]


def draw_box(ax, x, y, w, h, face, title, subtitle):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.15", fc=face, ec="#37474f"))
    ax.text(x + w / 2, y + h * 0.66, title, ha="center", va="center", fontsize=11, weight="bold", family="monospace")
    ax.text(x + w / 2, y + h * 0.28, subtitle, ha="center", va="center", fontsize=8.5, color="#37474f")


def anchor(box, towards):
    """The point on `box`'s edge an arrow leaves from or lands on: bottom/top when stacked, else a side."""
    x, y, w, h = box[:4]
    tx, ty, tw, th = towards[:4]
    if ty + th <= y or ty >= y + h:  # stacked: the middle of the facing edge, over the overlap
        cx = (max(x, tx) + min(x + w, tx + tw)) / 2 if min(x + w, tx + tw) > max(x, tx) else x + w / 2
        return cx, (y if ty < y else y + h)
    return (x + w if tx > x else x), y + h / 2


def draw():
    fig, ax = plt.subplots(figsize=(12, 7.5))
    ax.set_xlim(0, 16)
    ax.set_ylim(0, 10.3)
    ax.axis("off")
    for x, y, w, h, face, title, subtitle in BOXES.values():
        draw_box(ax, x, y, w, h, face, title, subtitle)
    for start, end, label in ARROWS:
        a, b = anchor(BOXES[start], BOXES[end]), anchor(BOXES[end], BOXES[start])
        ax.annotate("", xy=b, xytext=a, arrowprops={"arrowstyle": "-|>", "color": "#37474f", "lw": 1.4})
        if label and a[0] == b[0]:  # vertical arrow: label to its right
            ax.text(a[0] + 0.12, (a[1] + b[1]) / 2, label, fontsize=8, color="#455a64", va="center")
        elif label:  # horizontal arrow: label above it
            ax.text((a[0] + b[0]) / 2, a[1] + 0.08, label, fontsize=8, color="#455a64", ha="center", va="bottom")
    # The drift alarm closes the loop: monitoring can start a retrain (flows/, AUTOMATION_DRIFT_URL),
    # drawn around the boxes: left along the bottom, up the left margin, over the top row into flows/.
    ax.plot([12.5, 0.1, 0.1, 6.55], [0.65, 0.65, 10.1, 10.1], color="#c62828", lw=1.2, ls="--")
    ax.annotate("", xy=(6.55, 9.7), xytext=(6.55, 10.1), arrowprops={"arrowstyle": "-|>", "color": "#c62828"})
    ax.text(4.0, 0.8, "a drift alarm starts a retrain (flows/)", fontsize=8.5, color="#c62828")
    ax.set_title("CIFAR-100 pipeline: who calls whom", fontsize=13, weight="bold")
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(OUT)


if __name__ == "__main__":
    draw()
