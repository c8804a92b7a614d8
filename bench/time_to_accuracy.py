"""Claim: the `fast` recipe (ResNet-9, 15 epochs, params.yaml) trains to >= 75 % top-1 on the
CIFAR-100 test set in <= 10 s of training on one H100/H200 (issue 22), through the project's
own training code. Unmeasured on a GPU until a lent host runs bench/gpu/run.sh.

Method, after airbench (Keller Jordan, 2024): the real CIFAR-100 from --archive (a
cifar-100-python.tar.gz, or a folder holding it or its unpacked cifar-100-python/; default
$CIFAR100_DIR/cifar-100-python.tar.gz) is read with stages.lib.dataset; all 50,000 train
images are trained on (no validation split: the test set is looked at once, at the end)
with per-channel statistics from them as in the preprocess stage. The recipe runs through
stages.lib.loop.fit, unchanged: uint8 images resident on the device, batched crop + flip,
the recipe's optimizer, schedule, precision, channels_last and torch.compile choices.

- train_seconds: the sum of fit's per-epoch training time (steps only; the per-epoch
  checkpoint write is outside it); img_per_s = images trained / train_seconds.
- compile_seconds, reported apart: before fit, when the run compiles, a few throw-away
  steps on the same net and batch shape compile the step and autotune cuDNN, then the
  initial weights are put back, so training starts from exactly the seeded init.
  first_epoch_seconds next to the mean of the others shows whether anything still
  compiled inside the timed run.
- top1: the test set after training, with the recipe's test-time augmentation
  (stages.lib.loop.predict), timed apart as eval_seconds.
- seconds_ratio = train_seconds / 10 s (the goal); met_goal needs both goals on the full data.
--epochs, --batch-size, --limit and --test-limit shrink the run; without CUDA they default to a
check of the code path (1 epoch, batch 128, 512 train and 512 test images; --full for the whole
recipe). A run on a subset reports `limited: true` and never meets the goal. Without data
(no --archive, no $CIFAR100_DIR) it prints that it skipped and exits 0, as `make bench` needs.

Prints one JSON line: recipe, model, device, top1, train_seconds, img_per_s, epochs,
compile_seconds, eval_seconds, the goal fields, the settings used, torch, commit, data.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

from bench._common import commit, device_name, sync
from bench.train_throughput import ARCHIVE_NAME, ROOT, cifar_folder, default_archive
from stages.lib import cifar_pickles, dataset, device, loop, model, params
from stages.lib.checkpoint import Checkpoint
from stages.lib.distributed import SOLO
from stages.preprocess import channel_stats

GOAL_TOP1, GOAL_SECONDS = 0.75, 10.0
WARMUP_STEPS = 3  # throw-away steps that absorb torch.compile and cuDNN autotuning


def load_config(params_path: Path, recipe: str | None, **overrides) -> params.TrainConfig:
    """The resolved train config of `recipe` (default: params.yaml's train.recipe), with overrides
    that are not None (e.g. epochs=1 for a CPU check)."""
    p = params.load(params_path)
    if recipe is not None:
        p = dataclasses.replace(p, train=dataclasses.replace(p.train, recipe=recipe))  # re-validated
    cfg = params.train_config(p)
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def raw_root(source: Path, tmp: Path) -> Path:
    """A folder holding cifar-100-python/: `source` itself, or `tmp` after unpacking the archive."""
    if source.is_dir() and (source / dataset.ARCHIVE_DIR).is_dir():
        return source
    archive = source / ARCHIVE_NAME if source.is_dir() else source
    if not archive.is_file():
        raise SystemExit(f"time_to_accuracy: --archive {source}: no {ARCHIVE_NAME} or {dataset.ARCHIVE_DIR}/ there")
    cifar_folder(tmp, archive, 0)
    return tmp


def load_cifar(root: Path, limit: int | None, test_limit: int | None):
    """(train Arrays, test Arrays, mean, std): the first `limit` / `test_limit` images of each split,
    uint8 (N, 3, 32, 32); mean and std per channel in [0, 1] units from the train images used."""
    raw = cifar_pickles.read_pickles(root)

    def arrays(split: dataset.Split, n: int | None) -> dataset.Arrays:
        sel = slice(0, n)
        return dataset.Arrays(split.images[sel].reshape(-1, *dataset.IMAGE_SHAPE), split.fine[sel], split.coarse[sel])

    train, test = arrays(raw.train, limit), arrays(raw.test, test_limit)
    mean, std = channel_stats(train.x)
    return train, test, mean, std


def warm_up(net: torch.nn.Module, cfg, rt, data: loop.DeviceData, norm: loop.Normalizer) -> float:
    """Seconds spent compiling: WARMUP_STEPS throw-away steps of the compiled net at the training
    batch shape (fit's own torch.compile wrapper of the same net then finds the code cached), after
    which the net's initial weights and buffers are restored exactly."""
    began = time.perf_counter()
    initial = copy.deepcopy(net.state_dict())
    if rt.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as fit sets it: autotune here, not in epoch 1
    batch = loop.global_batch(len(data.y), cfg, SOLO)
    n = min(len(data.y), batch * WARMUP_STEPS)
    opt, sched = loop.build_optimizer(net, cfg, 10**6)
    gen = torch.Generator(device=rt.device).manual_seed(0)
    part = loop.DeviceData(data.x[:n], data.y[:n])
    loop.train_epoch(torch.compile(net), opt, sched, part, cfg, norm, rt, gen, tqdm(disable=True))
    net.load_state_dict(initial)
    sync(rt.device)
    return time.perf_counter() - began


def train(cfg, rt, train_set: loop.DeviceData, norm: loop.Normalizer, tmp: Path):
    """(net, per-epoch timings, compile seconds): fit from the seeded init, without validation."""
    torch.manual_seed(cfg.seed)
    net = model.build(cfg.model, 100).to(rt.device, memory_format=rt.memory_format)
    compile_s = warm_up(net, cfg, rt, train_set, norm) if rt.compile else 0.0
    timings: list[dict] = []
    no_val = loop.DeviceData(train_set.x[:0], train_set.y[:0])  # fit validates only a non-empty set
    ckpt = Checkpoint(tmp / "checkpoints", "time-to-accuracy")  # a fresh folder: nothing to resume
    loop.fit(net, train_set, no_val, cfg, norm, rt, ckpt, lambda row, timing: timings.append(timing))
    return net, timings, compile_s


# Without CUDA the full recipe would take hours: a CPU run is a check of the code path, on a subset.
CPU_DEFAULTS = {"epochs": 1, "batch_size": 128, "limit": 512, "test_limit": 512}


def _args(cuda: bool) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="fast", help="a key of params.yaml's recipes (default: fast, the claim's)")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--archive", type=Path, default=default_archive(), help=f"{ARCHIVE_NAME} or a folder with it")
    ap.add_argument("--epochs", type=int, help="override the recipe's epochs (CPU default: 1)")
    ap.add_argument("--batch-size", type=int, help="override the recipe's batch size (CPU default: 128)")
    ap.add_argument("--limit", type=int, help="train on the first N train images only (CPU default: 512)")
    ap.add_argument("--test-limit", type=int, help="score the first N test images only (CPU default: 512)")
    ap.add_argument("--full", action="store_true", help="no CPU defaults: the whole recipe on all the data")
    ap.add_argument("--compile", choices=["auto", "on", "off"], help="override train.compile")
    args = ap.parse_args()
    if not cuda and not args.full:
        for key, value in CPU_DEFAULTS.items():
            setattr(args, key, value if getattr(args, key) is None else getattr(args, key))
    return args


def result(cfg, rt, timings: list[dict], top1: float, extra: dict) -> dict:
    """The JSON line: headline figures first, then how they were obtained."""
    seconds = sum(t["epoch_seconds"] for t in timings)
    images = sum(t["epoch_images"] for t in timings)
    later = [t["epoch_seconds"] for t in timings[1:]]
    limited = bool(extra.pop("limited"))
    return {
        "recipe": cfg.recipe,
        "model": cfg.model,
        "device": device_name(rt.device),
        "top1": round(top1, 4),
        "train_seconds": round(seconds, 3),
        "img_per_s": round(images / seconds, 1),
        "epochs": len(timings),
        "compile_seconds": round(extra.pop("compile_seconds"), 3),
        "eval_seconds": round(extra.pop("eval_seconds"), 3),
        "first_epoch_seconds": round(timings[0]["epoch_seconds"], 3),
        "later_epoch_seconds_mean": round(statistics.fmean(later), 3) if later else None,
        "goal_top1": GOAL_TOP1,
        "goal_seconds": GOAL_SECONDS,
        "seconds_ratio": round(seconds / GOAL_SECONDS, 3),
        "met_goal": not limited and top1 >= GOAL_TOP1 and seconds <= GOAL_SECONDS,
        "limited": limited,
        "batch_size": cfg.batch_size,
        "precision": "bf16" if rt.bf16 else "fp32",
        "compile": rt.compile,
        "channels_last": rt.channels_last,
        "tta": {"flip": cfg.tta_flip, "translate": cfg.tta_translate},
        "torch": torch.__version__,
        "commit": commit(ROOT),
        **extra,
    }


def main() -> None:
    args = _args(torch.cuda.is_available())
    if args.archive is None:  # `make bench` on a machine without the dataset: nothing to measure
        print(f"time_to_accuracy: skipped: no data; pass --archive or set CIFAR100_DIR to a folder with {ARCHIVE_NAME}")
        return
    cfg = load_config(args.params, args.recipe, epochs=args.epochs, batch_size=args.batch_size, compile=args.compile)
    rt = device.resolve(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        train_np, test_np, mean, std = load_cifar(raw_root(args.archive, Path(tmp)), args.limit, args.test_limit)
        train_set = loop.DeviceData.from_arrays(train_np, rt.device)
        test_set = loop.DeviceData.from_arrays(test_np, rt.device)
        norm = loop.Normalizer(mean, std, rt)
        net, timings, compile_s = train(cfg, rt, train_set, norm, Path(tmp))
        began = time.perf_counter()
        logits = loop.predict(net, test_set.x, 1024, norm, rt, cfg.tta_flip, cfg.tta_translate)
        _, top1 = loop.score(logits, test_set.y)
        eval_s = time.perf_counter() - began
    extra = {
        "compile_seconds": compile_s,
        "eval_seconds": eval_s,
        "limited": args.limit is not None or args.test_limit is not None,  # fewer epochs may still count
        "train_images": len(train_np.y),
        "test_images": len(test_np.y),
        "data": args.archive.name,
    }
    print(f"time_to_accuracy: {cfg.recipe} on {device_name(rt.device)}", file=sys.stderr)
    print(json.dumps(result(cfg, rt, timings, top1, extra)))


if __name__ == "__main__":
    main()
