"""evaluate: score the trained model on the test split.

Writes (paths from dvc.yaml) DVC metrics (top-1, top-5, loss, superclass
top-1), per-class accuracy, one (actual, predicted) row per test image for
DVC's confusion template, and a confusion-matrix PNG; logs all of it to the
MLflow run that trained these exact weights.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from stages.lib import cli, fsio, model_card, params
from stages.lib.dataset import load_arrays


def summarise(logits: np.ndarray, y: np.ndarray, coarse: np.ndarray, fine_to_coarse: np.ndarray) -> dict:
    """Test metrics from float logits (N, C) and int labels (N,)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    top5 = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    pred = top5[:, 0]
    return {
        "top1": float((pred == y).mean()),
        "top5": float((top5 == y[:, None]).any(axis=1).mean()),
        "loss": float(-log_probs[np.arange(len(y)), y].mean()),
        "superclass_top1": float((fine_to_coarse[pred] == coarse).mean()),
    }


def macro_prf(pred: np.ndarray, y: np.ndarray, num_classes: int) -> dict[str, float]:
    """Macro-averaged precision, recall and F1 over all classes; 0 where a class is never predicted/present."""
    tp = np.bincount(y, weights=(pred == y), minlength=num_classes)
    predicted = np.bincount(pred, minlength=num_classes)
    actual = np.bincount(y, minlength=num_classes)
    precision = np.divide(tp, predicted, out=np.zeros(num_classes), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(num_classes), where=actual > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(num_classes), where=total > 0)
    return {
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
    }


def per_class(pred: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, float]:
    hits = np.bincount(y, weights=(pred == y), minlength=len(names))
    counts = np.bincount(y, minlength=len(names))
    return {name: float(h / c) if c else 0.0 for name, h, c in zip(names, hits, counts)}


def confusion_png(pred: np.ndarray, y: np.ndarray, names: list[str]) -> bytes:
    """Row-normalised confusion matrix (actual rows, predicted columns) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(names)
    matrix = np.zeros((n, n))
    np.add.at(matrix, (y, pred), 1)
    matrix /= np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(12, 12), dpi=100)
    ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=90, fontsize=4)
    ax.set_yticks(range(n), names, fontsize=4)
    ax.set(xlabel="predicted", ylabel="actual", title="CIFAR-100 test confusion (row-normalised)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _logits(model_dir: Path, data_dir: Path, cfg: params.EvaluateParams) -> np.ndarray:
    import dataclasses

    from stages.lib import device, loop, model

    card = model_card.load(model_dir)
    # The card's resolved train config decides device, precision and the TTA views;
    # evaluation runs eagerly (one pass does not repay compiling).
    trained = card.train_params
    rt = device.resolve(dataclasses.replace(trained, compile="off"))
    # Module.to accepts device with memory_format; torch's typed overloads lack that combination.
    net = model.build(card.architecture, card.num_classes).to(rt.device, memory_format=rt.memory_format)  # type: ignore[call-overload]
    net.load_state_dict(model_card.load_weights(model_dir, rt.device))
    test = loop.DeviceData.from_arrays(load_arrays(data_dir, "test"), rt.device)
    norm = loop.Normalizer(card.mean, card.std, rt)
    return loop.predict(net, test.x, cfg.batch_size, norm, rt, trained.tta_flip, trained.tta_translate).cpu().numpy()


def evaluate(cfg: params.Params, model_dir: Path, data_dir: Path, out: dict[str, Path]) -> dict:
    fsio.remove(*out.values())
    card = model_card.load(model_dir)  # checks both files are there before any work
    test = load_arrays(data_dir, "test")
    y, coarse = np.array(test.y), np.array(test.coarse)
    logits = _logits(model_dir, data_dir, cfg.evaluate)
    pred = logits.argmax(axis=1)
    metrics = {"test": summarise(logits, y, coarse, np.array(card.fine_to_coarse))}
    metrics["test"].update(macro_prf(pred, y, logits.shape[1]))
    names = card.fine_names
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["actual", "predicted"])
    writer.writerows((names[a], names[p]) for a, p in zip(y, pred))
    fsio.write_json(out["per_class"], per_class(pred, y, names))
    fsio.write_bytes(out["confusion"], rows.getvalue().encode())
    fsio.write_bytes(out["confusion_png"], confusion_png(pred, y, names))
    fsio.write_json(out["metrics"], metrics)
    _log(cfg, model_dir, metrics, out)
    return metrics


def _log(cfg: params.Params, model_dir: Path, metrics: dict, out: dict[str, Path]) -> None:
    """Attach results to the training run of these weights (a new run if none is found)."""
    import mlflow

    from stages.lib import tracking

    tracking.configure(cfg.mlflow.experiment)
    sha = model_card.weights_sha256(model_dir)
    run_id = tracking.find_run(sha)
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else "evaluate"):
        mlflow.set_tag(tracking.MODEL_TAG, sha)
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics["test"].items()})
        for key in ("per_class", "confusion_png"):
            mlflow.log_artifact(str(out[key]), "evaluation")


def _main(argv) -> None:
    names = ("model", "data", "metrics", "per-class", "confusion", "confusion-png")
    args = cli.parser(__doc__.splitlines()[0], *names).parse_args(argv)
    cfg = params.load(args.params)
    out = {k: Path(getattr(args, k)) for k in ("metrics", "per_class", "confusion", "confusion_png")}
    metrics = evaluate(cfg, Path(args.model), Path(args.data), out)
    print(f"evaluate: {metrics['test']} -> {args.metrics}")


def main(argv=None) -> int:
    return cli.run("evaluate", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
