"""docs/figures/ab-accuracy.png: `make ab-report`'s PNG on SIMULATED feedback (champion top-1 0.75,
challenger 0.78, 6,000 labels each over 48 hours), to show the page's figure; not a measurement.
Run: .venv/bin/python docs/figures/ab_accuracy.py"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ops import ab_report
from serve.feedback import Labelled

rng = np.random.default_rng(0)
rows, n = [], 12_000
hours = np.sort(rng.uniform(0, 48 * 3600, n))
for i, t in enumerate(hours):
    variant = "challenger" if i % 2 else "champion"
    right = rng.random() < (0.78 if i % 2 else 0.75)
    rows.append(Labelled(str(i), variant, "2" if i % 2 else "1", 1, 1 if right else 2, float(t), float(t)))
ab_report.plot(rows, Path(__file__).parent / "ab-accuracy.png")
print(ab_report.build(rows, ab_report.abstats.AbConfig())["verdict"])
