"""train: fit the configured network on the processed data, tracked in MLflow.

Outputs (paths from dvc.yaml): the weights (`model.pt`, a CPU state_dict) and
`model.json` (architecture, normalisation, class names, the resolved train
config) in the model dir, and a per-epoch history JSON for `dvc plots`.
Timings go to MLflow only, so DVC-tracked bytes depend on inputs alone.
"""
from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

from stages.lib import cli, fsio, params
from stages.lib.dataset import load_arrays, load_meta

WEIGHTS, CARD = "model.pt", "model.json"


def _open_run(mlflow, ckpt, cfg: params.Params, extra_tags: dict) -> object:
    """Resume the run a checkpoint belongs to, or start a new one with params and provenance."""
    from mlflow.exceptions import MlflowException

    state = ckpt.peek()
    if state is not None:
        try:
            return mlflow.start_run(run_id=mlflow.get_run(state["extra"]["run_id"]).info.run_id)
        except MlflowException:
            print("train: the checkpoint's MLflow run is not in this store; starting a new run")
    run = mlflow.start_run(run_name=f"train-{cfg.train.model}")
    mlflow.log_params(params.flatten(params.as_dict(cfg)))
    mlflow.set_tags(extra_tags)
    return run


def _save_model(net, meta: dict, cfg: params.TrainParams, out: Path) -> str:
    """Write weights and model card atomically; return the weights' sha256."""
    import torch

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, buf)
    card = {
        "architecture": cfg.model,
        "num_classes": len(meta["fine_names"]),
        "input": "uint8 (N, 3, 32, 32), normalised with mean/std in [0, 1] units",
        "mean": meta["mean"], "std": meta["std"],
        "fine_names": meta["fine_names"], "coarse_names": meta["coarse_names"],
        "fine_to_coarse": meta["fine_to_coarse"],
        "train_params": params.as_dict(cfg),
    }
    with fsio.atomic_dir(out) as scratch:
        (scratch / WEIGHTS).write_bytes(buf.getvalue())
        fsio.write_json(scratch / CARD, card)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def train(cfg: params.Params, data_dir: Path, model_dir: Path, history_path: Path, ckpt_dir: Path) -> list[dict]:
    import mlflow
    import torch

    from stages.lib import device, loop, model, tracking
    from stages.lib.checkpoint import Checkpoint, fingerprint

    began = time.perf_counter()
    fsio.remove(model_dir, history_path)
    rt = device.resolve(cfg.train)
    meta = load_meta(data_dir)
    train_set = loop.DeviceData.from_arrays(load_arrays(data_dir, "train"), rt.device)
    val_set = loop.DeviceData.from_arrays(load_arrays(data_dir, "val"), rt.device)
    torch.manual_seed(cfg.train.seed)
    net = model.build(cfg.train.model, len(meta["fine_names"])).to(rt.device, memory_format=rt.memory_format)
    ckpt = Checkpoint(ckpt_dir, fingerprint(params.as_dict(cfg.train), meta))
    tracking.configure(cfg.mlflow.experiment)
    tags = {**tracking.provenance([str(data_dir)]), **device.describe(rt)}
    with _open_run(mlflow, ckpt, cfg, tags) as run:
        ckpt.extra["run_id"] = run.info.run_id
        log = lambda row, timing: mlflow.log_metrics({**row, **timing}, step=row["epoch"])  # noqa: E731
        history = loop.fit(net, train_set, val_set, cfg.train, loop.Normalizer(meta["mean"], meta["std"], rt), rt, ckpt, log)
        sha = _save_model(net, meta, cfg.train, model_dir)
        fsio.write_json(history_path, history)
        mlflow.set_tag(tracking.MODEL_TAG, sha)
        mlflow.log_metric("train_duration_s", time.perf_counter() - began)
    ckpt.clear()
    return history


def _main(argv) -> None:
    ap = cli.parser(__doc__.splitlines()[0], "data", "model", "history", "checkpoints")
    args = ap.parse_args(argv)
    cfg = params.load(args.params)
    history = train(cfg, Path(args.data), Path(args.model), Path(args.history), Path(args.checkpoints))
    print(f"train: {len(history)} epochs, last {history[-1]} -> {args.model}")


def main(argv=None) -> int:
    return cli.run("train", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
