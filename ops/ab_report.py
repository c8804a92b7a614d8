"""`make ab-report`: the A/B test's state from the feedback store, safe to read at any time.

Per variant (champion, challenger): labelled requests, online top-1 with its 95 % Wilson interval;
the mSPRT verdict (ops/abstats.py: promote | keep | inconclusive) with its e-value and always-valid
p-value; the labels per variant still needed to find a difference of AB_MDE; a PNG of cumulative
top-1 over time per variant. Each variant's rows count for its latest version only (a moved
alias starts that variant afresh). Writes <AB_OUT>/report.json and accuracy.png; prints the
report as one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from ops import ab_settings, abstats
from ops.common import main as run_op
from serve.feedback import FeedbackStore, Labelled

VARIANTS = ("champion", "challenger")
TEST = "mSPRT (Johari et al. 2022), normal mixture tau on the top-1 difference; always valid"


def current(rows: list[Labelled]) -> list[Labelled]:
    """The rows of each variant's latest version (the one answered last), in label order."""
    latest: dict[str, tuple[float, str]] = {}
    for r in rows:
        if r.variant not in latest or r.at >= latest[r.variant][0]:
            latest[r.variant] = (r.at, r.version)
    return [r for r in rows if r.variant in VARIANTS and r.version == latest[r.variant][1]]


def _variant(rows: list[Labelled], name: str) -> dict:
    mine = [r for r in rows if r.variant == name]
    k, n = sum(r.correct for r in mine), len(mine)
    low, high = abstats.wilson(k, n)
    return {
        "version": mine[-1].version if mine else None,
        "labelled": n,
        "correct": k,
        "top1": k / n if n else None,
        "ci95": [low, high],
    }


def build(rows: list[Labelled], cfg: abstats.AbConfig) -> dict:
    """The report (a JSON-able dict) from labelled rows in label order."""
    rows = current(rows)
    variants = {name: _variant(rows, name) for name in VARIANTS}
    b = np.array([r.variant == "challenger" for r in rows], dtype=bool)
    c = np.array([r.correct for r in rows], dtype=bool)
    v = abstats.verdict_of_stream(b, c, cfg)
    base = variants["champion"]["top1"]
    need = abstats.needed_per_arm(base if base is not None else 0.5, cfg)
    have = min(variants["champion"]["labelled"], variants["challenger"]["labelled"])
    return {
        "variants": variants,
        "test": TEST,
        "config": dataclasses.asdict(cfg),
        **dataclasses.asdict(v),
        "needed_per_arm": need,
        "still_needed_per_arm": 0 if v.decided_at is not None else max(0, need - have),
    }


def plot(rows: list[Labelled], path: Path) -> None:
    """Cumulative top-1 over label time per variant, with its 95 % Wilson band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = current(rows)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    t0 = min((r.labelled_at for r in rows), default=0.0)
    for name in VARIANTS:
        mine = [r for r in rows if r.variant == name]
        if not mine:
            continue
        hours = np.array([(r.labelled_at - t0) / 3600 for r in mine])
        k, n = np.cumsum([r.correct for r in mine]), np.arange(1, len(mine) + 1)
        bands = np.array([abstats.wilson(int(a), int(b)) for a, b in zip(k, n)])
        ax.plot(hours, k / n, label=f"{name} v{mine[-1].version} ({len(mine)} labels)")
        ax.fill_between(hours, bands[:, 0], bands[:, 1], alpha=0.2)
    ax.set(xlabel="hours since the first label", ylabel="online top-1 (cumulative)", title="A/B test: top-1")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(url: str, settings: ab_settings.AbSettings) -> dict:
    """Read the store, write report.json and accuracy.png under settings.out; return the report."""
    store = FeedbackStore(url)
    try:
        rows = store.labelled(since=settings.since)
    finally:
        store.dispose()
    body = build(rows, settings.config())
    out = settings.out
    plot(rows, out / "accuracy.png")
    body["png"] = str(out / "accuracy.png")
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(out / "report.json")  # all or nothing: a reader never sees half a report
    return body


def _main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    body = report(ab_settings.store_url(args.params), ab_settings.load())
    print(json.dumps(body))


def main(argv: list[str] | None = None) -> int:
    return run_op("ab-report", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
