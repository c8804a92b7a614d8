"""The sweep's comparison: reports/sweep.md (a `dvc exp show --md`-style table) and reports/sweep.png.

Params and test metrics come from `dvc exp show --json` (what DVC recorded for
each experiment); training time, images/s and the per-epoch validation curves
from the experiments' MLflow child runs (train logs them to MLflow only, so
DVC-tracked bytes depend on inputs alone). Both files are logged to the
sweep's parent run.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.lib import fsio

MD, PNG = Path("reports/sweep.md"), Path("reports/sweep.png")
METRICS = (  # (column, key in reports/metrics.json, flattened)
    ("test top-1", "test.top1"),
    ("top-5", "test.top5"),
    ("macro F1", "test.macro_f1"),
    ("macro precision", "test.macro_precision"),
    ("macro recall", "test.macro_recall"),
)


@dataclass
class Row:
    name: str
    state: str
    params: dict[str, Any]
    metrics: dict[str, float]
    train_s: float | None = None
    images_per_s: float | None = None
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, val_acc)

    @property
    def top1(self) -> float:
        return self.metrics.get("test.top1", -math.inf)


def child_runs(record: dict) -> dict[str, Any]:
    """{experiment name: its MLflow child run} under the sweep's parent run."""
    from mlflow import MlflowClient

    client = MlflowClient(record["tracking_uri"])
    exp_id = client.get_run(record["parent_run"]).info.experiment_id
    runs = client.search_runs(
        [exp_id], filter_string=f"tags.mlflow.parentRunId = '{record['parent_run']}'", max_results=1000
    )
    return {r.data.tags.get("sweep.exp", r.info.run_id): r for r in runs}


def collect(record: dict, shown: dict[str, dict], runs: dict[str, Any], client=None) -> list[Row]:
    """One row per experiment of the sweep, best test top-1 first, failed ones last."""
    rows = []
    for name in record["names"]:
        exp = shown.get(name, {"params": {}, "metrics": {}})
        state = record["states"].get(name, "Unknown")
        # A failed experiment's outputs in `dvc exp show` are its baseline's: show none.
        row = Row(name, state, exp["params"], exp["metrics"] if state == "Success" else {})
        run = runs.get(name)
        if run is not None:
            row.train_s = run.data.metrics.get("train_duration_s")
            row.images_per_s = run.data.metrics.get("train_images_per_s")
            if client is not None:
                history = client.get_metric_history(run.info.run_id, "val_acc")
                row.curve = sorted((m.step, m.value) for m in history)
        rows.append(row)
    return sorted(rows, key=lambda r: (r.state != "Success", -r.top1, r.name))


def _cell(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isinf(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(rows: list[Row], keys: list[str]) -> str:
    """Markdown table: experiment, state, swept params, test metrics, train time, img/s."""
    head = ["Experiment", "State", *keys, *(c for c, _ in METRICS), "train s", "img/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [r.name, r.state, *(_cell(r.params.get(k)) for k in keys)]
        cells += [_cell(r.metrics.get(key)) for _, key in METRICS]
        cells += [_cell(r.train_s, 1), _cell(r.images_per_s, 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown(record: dict, rows: list[Row]) -> str:
    ok = sum(r.state == "Success" for r in rows)
    head = [
        f"# Sweep {record['sweep_id']}",
        "",
        f"Grid: `{' '.join(record['grid'])}`; every experiment: `{' '.join(record['fixed']) or '-'}`; "
        f"{record['jobs']} at a time. {ok} of {len(rows)} succeeded. MLflow parent run `{record['parent_run']}`.",
        "Sorted by test top-1. `make promote EXP=<name>` applies one and runs the register gate.",
        "",
    ]
    return "\n".join(head) + "\n" + table(rows, record["keys"])  # a blank line before the table


def figure(rows: list[Row], keys: list[str]) -> bytes:
    """Test top-1 against each swept param, and every run's validation accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r.state == "Success"]
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4.5 * (len(keys) + 1), 4), dpi=100, squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = sorted((r.params.get(key), r.top1) for r in done if r.params.get(key) is not None)
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x, _ in points)
        xs = [x if numeric else str(x) for x, _ in points]
        ax.scatter(xs, [y for _, y in points])
        ax.set(xlabel=key, ylabel="test top-1", title=f"top-1 vs {key.rsplit('.', 1)[-1]}")
    curves = axes[0][-1]
    for r in rows:
        if r.curve:
            curves.plot([e for e, _ in r.curve], [v for _, v in r.curve], marker=".", label=r.name)
    curves.set(xlabel="epoch", ylabel="val accuracy", title="validation accuracy per epoch")
    if any(r.curve for r in rows):
        curves.legend(fontsize=6)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def write(root: Path, record: dict) -> Path:
    """Write reports/sweep.{md,png} for the sweep in `record` and log them to its parent run."""
    from mlflow import MlflowClient

    from sweep import dvcq

    client = MlflowClient(record["tracking_uri"])
    select = ("--rev", record["baseline"]) if record.get("baseline") else ()  # HEAD may have moved since
    rows = collect(record, dvcq.show(root, *select), child_runs(record), client)
    fsio.write_bytes(root / MD, markdown(record, rows).encode())
    fsio.write_bytes(root / PNG, figure(rows, record["keys"]))
    for path in (MD, PNG):
        client.log_artifact(record["parent_run"], str(root / path), "sweep")
    return root / MD


def reason(log: str) -> str:
    """A failed experiment's cause: its stage's one-line error (`stage: error: ...`), else DVC's last ERROR."""
    found = re.findall(r"^\w+: error: .*$", log, flags=re.M) or re.findall(r"^ERROR: .*$", log, flags=re.M)
    return found[-1].strip() if found else "no error line in its log"


def check_results(sw) -> None:
    """A `Success` DVC's queue reports counts only if `dvc exp show` has the experiment's metrics."""
    from sweep import dvcq

    shown = dvcq.show(sw.root, "--rev", sw.baseline)
    for name, state in sw.states.items():
        if state == "Success" and not shown.get(name, {}).get("metrics"):
            sw.states[name] = "Failed"
            sw.reasons[name] = "the queue says Success but DVC has no results for it (`dvc exp show`)"
