"""Time-to-accuracy report: train each recipe through the real train and evaluate
stages and tabulate recipe, device, epochs, wall time, images/s and final test top-1.

Runs in a scratch project (data prepared once by ingest/validate/preprocess), so
params.yaml, dvc.lock and the project's outputs are never touched. Each recipe's
train run lands in the project's MLflow store (MLFLOW_TRACKING_URI when set), in the
experiment `bench-train`; the table's figures are that run's own metrics, read back
from it (train_duration_s = wall time of the train stage, train_images_per_s = images
per second of the training steps, test_top1 from evaluate), so report and MLflow agree.

On a GPU the recipes run as committed, on params.yaml's data (or --archive). Without
one, --tiny (the default there) shrinks them to something 2 CPU cores finish in about
a minute: synthetic data, 1 epoch, batch 32 with the lr scaled linearly.
Writes reports/bench_train.json and reports/bench_train.md (not DVC-tracked) and
prints the rows as one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

from smoke.sandbox import merge
from stages.lib import fsio, model_card, params, tracking

ROOT = Path(__file__).resolve().parent.parent

EXPERIMENT = "bench-train"
PREPARE = ("ingest", "validate", "preprocess")
COLUMNS = (
    ("recipe", "recipe"),
    ("model", "model"),
    ("device", "device"),
    ("epochs", "epochs"),
    ("wall_s", "wall time (s)"),
    ("images_per_s", "images/s"),
    ("top1", "test top-1"),
)


def _args() -> argparse.Namespace:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default="fast,resnet18", help="comma-separated keys of params.yaml's recipes")
    ap.add_argument(
        "--tiny",
        action=argparse.BooleanOptionalAction,
        default=not torch.cuda.is_available(),
        help="CPU-sized run: synthetic data, 1 epoch, batch 32 (default: on without CUDA)",
    )
    ap.add_argument("--epochs", type=int, help="override every recipe's epochs")
    ap.add_argument("--batch-size", type=int, help="override every recipe's batch size (lr scaled linearly)")
    ap.add_argument("--archive", type=Path, help="train on this cifar-100-python.tar.gz instead of params.yaml's data")
    ap.add_argument("--synthetic-per-class", type=int, default=12, help="train images per class with --tiny")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_train", help="report path, no suffix")
    return ap.parse_args()


def overrides(args: argparse.Namespace, base: dict) -> dict:
    """What the scratch params.yaml changes: data source, sizes, and the experiment."""
    over: dict = {"mlflow": {"experiment": EXPERIMENT}, "recipes": {}}
    if args.archive:
        with open(args.archive, "rb") as f:
            md5 = hashlib.file_digest(f, "md5").hexdigest()
        over["data"] = {"source": "archive", "archive": {"path": str(args.archive.resolve()), "md5": md5}}
    elif args.tiny:
        over["data"] = {
            "source": "synthetic",
            "synthetic": {"train_per_class": args.synthetic_per_class, "test_per_class": 4},
        }
        over["validate"] = {"max_train_test_duplicates": 0}
    epochs, batch = args.epochs or (1 if args.tiny else None), args.batch_size or (32 if args.tiny else None)
    for name, recipe in base["recipes"].items():
        change = {"epochs": epochs} if epochs else {}
        if batch:  # linear scaling rule: lr per image stays the recipe's
            change.update(batch_size=batch, lr=recipe["lr"] * batch / recipe["batch_size"])
        over["recipes"][name] = change
    return over


def _stage(name: str) -> None:
    """Run one stage in this process with the argv dvc.yaml's cmd gives it."""
    from runner.__main__ import main as dispatch

    argv = shlex.split(params.read_yaml(ROOT / "dvc.yaml")["stages"][name]["cmd"])[3:]  # after `python -m runner`
    if dispatch(argv) != 0:
        raise SystemExit(f"bench-train: the {name} stage failed (see above)")


def row_of(run, recipe: str) -> dict:
    m, p, t = run.data.metrics, run.data.params, run.data.tags
    return {
        "recipe": recipe,
        "model": p["train.model"],
        "device": f"{t['device']} ({t['device.name']})",
        "epochs": int(p["train.epochs"]),
        "wall_s": round(m["train_duration_s"], 1),
        "images_per_s": round(m["train_images_per_s"], 1),
        "top1": round(m["test_top1"], 4),
        "processes": int(t["world_size"]),
        "run_id": run.info.run_id,
    }


def run_recipe(project: Path, raw: dict, recipe: str) -> dict:
    import mlflow

    write_yaml(project / "params.yaml", merge(raw, {"train": {"recipe": recipe}}))
    _stage("train")
    _stage("evaluate")
    sha = model_card.weights_sha256(project / "models")
    run = mlflow.get_run(tracking.find_run(sha))
    row = row_of(run, recipe)
    mlflow.MlflowClient().set_tag(run.info.run_id, "bench", EXPERIMENT)
    return row


def write_yaml(path: Path, raw: dict) -> None:
    from ruamel.yaml import YAML

    with open(path, "w") as f:
        YAML(typ="safe", pure=True).dump(raw, f)


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r[key]) for key, _ in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def use_project_store() -> None:
    """The project's MLflow store, even though the stages run in a scratch directory."""
    import mlflow

    uri, artifacts = tracking.local_store(ROOT)
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = uri
        mlflow.set_tracking_uri(uri)
        if mlflow.get_experiment_by_name(EXPERIMENT) is None:  # artifacts next to the project's, not in scratch
            mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)


def main() -> int:
    args = _args()
    base = params.read_yaml(ROOT / "params.yaml")
    raw = merge(base, overrides(args, base))
    params.parse(raw, "params.yaml (with bench-train's overrides)")
    os.environ["PIPELINE_EXECUTOR"] = "local"
    use_project_store()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        os.chdir(tmp)
        try:
            write_yaml(Path(tmp) / "params.yaml", raw)
            for name in PREPARE:
                _stage(name)
            for recipe in args.recipes.split(","):
                rows.append(run_recipe(Path(tmp), raw, recipe))
        finally:
            os.chdir(ROOT)
    settings = {"tiny": args.tiny, "data": raw["data"]["source"], "experiment": EXPERIMENT}
    fsio.write_json(args.out.with_suffix(".json"), {"settings": settings, "rows": rows})
    fsio.write_bytes(args.out.with_suffix(".md"), markdown(rows).encode())
    print(markdown(rows), file=sys.stderr)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
