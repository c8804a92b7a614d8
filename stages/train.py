"""train: fit the selected recipe's network on the processed data, tracked in MLflow.

Outputs (paths from dvc.yaml): the model dir (stages/lib/model_card.py: the
weights and the typed model card: architecture, normalisation, class names, the
resolved train config and the settings it came from), and a
per-epoch history JSON for `dvc plots`. Timings go to MLflow only, so
DVC-tracked bytes depend on inputs alone. With several GPUs visible the stage
re-runs itself under torchrun, one DDP process per GPU (stages/lib/distributed.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from stages.lib import cli, distributed, fsio, model_card, params
from stages.lib.dataset import load_arrays, load_meta

if TYPE_CHECKING:
    from mlflow import ActiveRun  # mlflow itself is imported lazily (heavy)


def _open_run(mlflow, ckpt, cfg: params.Params, resolved: params.TrainConfig, extra_tags: dict) -> ActiveRun:
    """Resume the run a checkpoint belongs to, or start a new one with params and provenance."""
    from mlflow.exceptions import MlflowException

    state = ckpt.peek()
    if state is not None:
        try:
            return mlflow.start_run(run_id=mlflow.get_run(state["extra"]["run_id"]).info.run_id)
        except MlflowException:
            print("train: the checkpoint's MLflow run is not in this store; starting a new run")
    run = mlflow.start_run(run_name=f"train-{resolved.recipe}-{resolved.model}")
    # The recipe in use, resolved into train.*; the recipes not selected are left out.
    logged = {k: v for k, v in params.as_dict(cfg).items() if k != "recipes"}
    mlflow.log_params(params.flatten({**logged, "train": params.as_dict(resolved)}))
    mlflow.set_tags(extra_tags)
    return run


def _save_model(net, meta: dict, resolved: params.TrainConfig, cfg: params.Params, out: Path) -> str:
    """Write weights and model card atomically (stages/lib/model_card.py); return the weights' sha256."""
    card = model_card.make(resolved.model, meta, resolved, cfg)
    return model_card.save(out, net.state_dict(), card)


def _tracked(
    cfg: params.Params,
    resolved: params.TrainConfig,
    fit,
    net,
    meta: dict,
    tags: dict,
    ckpt,
    out: dict[str, Path],
    began: float,
) -> list[dict]:
    """Run `fit` inside the run's MLflow run, then write the model and history (rank 0 only)."""
    import mlflow

    from stages.lib import sweepmode, tracking

    tracking.configure(cfg.mlflow.experiment)
    tags = {**tracking.provenance([str(out["data"])]), **tags}
    tags.update(sweepmode.run_tags(params.flatten(params.as_dict(cfg))))  # nested under the sweep's run
    epochs: list[dict] = []  # timings of the epochs this process ran

    def log(row: dict, timing: dict) -> None:
        epochs.append(timing)
        mlflow.log_metrics({**row, **timing}, step=row["epoch"])

    with _open_run(mlflow, ckpt, cfg, resolved, tags) as run:
        ckpt.extra["run_id"] = run.info.run_id
        history = fit(log)
        sha = _save_model(net, meta, resolved, cfg, out["model"])
        fsio.write_json(out["history"], history)
        mlflow.set_tag(tracking.MODEL_TAG, sha)
        summary = {"train_duration_s": time.perf_counter() - began}
        if epochs:  # images per second of training steps alone, over the whole run
            seconds = sum(t["epoch_seconds"] for t in epochs)
            summary["train_images_per_s"] = sum(t["epoch_images"] for t in epochs) / seconds
        mlflow.log_metrics(summary)
    return history


def train(cfg: params.Params, data_dir: Path, model_dir: Path, history_path: Path, ckpt_dir: Path) -> list[dict]:
    """Train on this process's share; returns the history (empty on DDP ranks other than 0)."""
    import torch

    from stages.lib import device, loop, model
    from stages.lib.checkpoint import Checkpoint, fingerprint

    began = time.perf_counter()
    resolved = params.train_config(cfg)
    group = distributed.Group.from_env()
    group.check(resolved)
    rt = device.resolve(resolved, group.local_rank)
    with distributed.joined(group, rt.device):
        if group.main:
            fsio.remove(model_dir, history_path)
        meta = load_meta(data_dir)
        train_set = loop.DeviceData.from_arrays(load_arrays(data_dir, "train"), rt.device)
        val_set = loop.DeviceData.from_arrays(load_arrays(data_dir, "val"), rt.device)
        torch.manual_seed(resolved.seed)
        # Module.to accepts device with memory_format; torch's typed overloads lack that combination.
        net = model.build(resolved.model, len(meta["fine_names"])).to(rt.device, memory_format=rt.memory_format)  # type: ignore[call-overload]
        ckpt = Checkpoint(ckpt_dir, fingerprint(params.as_dict(resolved), meta))
        norm = loop.Normalizer(meta["mean"], meta["std"], rt)
        fit = lambda log: loop.fit(net, train_set, val_set, resolved, norm, rt, ckpt, log, group)  # noqa: E731
        if not group.main:  # rank 0 alone tracks, checkpoints and writes outputs
            fit(lambda row, timing: None)
            return []
        out = {"data": data_dir, "model": model_dir, "history": history_path}
        tags = {**device.describe(rt), "world_size": str(group.world)}  # processes that trained it
        history = _tracked(cfg, resolved, fit, net, meta, tags, ckpt, out, began)
    ckpt.clear()
    return history


def _main(argv) -> None:
    ap = cli.parser(__doc__.splitlines()[0], "data", "model", "history", "checkpoints")
    args = ap.parse_args(argv)
    cfg = params.load(args.params)
    processes = distributed.processes_to_launch(params.train_config(cfg))
    if processes:
        print(f"train: {processes} GPUs visible: one DDP process per GPU under torchrun")
        code = distributed.relaunch(processes, "stages.train", sys.argv[1:] if argv is None else argv)
        if code:
            raise cli.PipelineError(f"torchrun exited with code {code} (the processes' own errors are above)")
        return
    fsio.check_writable(args.model, args.history, dirs=(args.checkpoints,))  # before an epoch is spent
    history = train(cfg, Path(args.data), Path(args.model), Path(args.history), Path(args.checkpoints))
    if history:
        print(f"train: {len(history)} epochs, last {history[-1]} -> {args.model}")


def main(argv=None) -> int:
    return cli.run("train", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
