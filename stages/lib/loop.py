"""The one training loop: device-resident uint8 data, batched augmentation,
autocast, optional torch.compile, optional EMA, DDP across torchrun processes,
one host sync per `log_every` steps.

Randomness is explicit: the model's init comes from `seed`, and each epoch's
shuffle, crops and flips from a generator seeded by (seed, epoch), so a run
resumed from an epoch checkpoint repeats exactly what an unbroken run does,
and every DDP rank draws the same global batches as a single process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stages.lib.augment import augment, tta_views
from stages.lib.checkpoint import Checkpoint
from stages.lib.dataset import Arrays
from stages.lib.device import Runtime
from stages.lib.distributed import SOLO, Group, all_sum
from stages.lib.ema import Ema
from stages.lib.params import TrainConfig


@dataclass(frozen=True)
class DeviceData:
    x: torch.Tensor  # uint8 (N, 3, 32, 32), on the training device
    y: torch.Tensor  # int64 (N,)

    @classmethod
    def from_arrays(cls, arrays: Arrays, device: torch.device) -> DeviceData:
        # np.array copies out of the read-only memory map in one pass.
        return cls(torch.from_numpy(np.array(arrays.x)).to(device), torch.from_numpy(np.array(arrays.y)).to(device))


class Normalizer:
    """uint8 (B, 3, H, W) -> float (B, 3, H, W), standardised per channel."""

    def __init__(self, mean: list[float], std: list[float], rt: Runtime):
        self.mean = torch.tensor(mean, device=rt.device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std, device=rt.device).view(1, 3, 1, 1) * 255.0
        self.memory_format = rt.memory_format

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.float() - self.mean) / self.std).contiguous(memory_format=self.memory_format)


def lr_factor(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up to 1, then linear (onecycle) or cosine decay to 0."""
    warm = max(1, round(cfg.warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total_steps - warm)
        return max(0.0, 1.0 - t) if cfg.schedule == "onecycle" else 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return factor


def build_optimizer(net: nn.Module, cfg: TrainConfig, total_steps: int):
    on_gpu = next(net.parameters()).device.type == "cuda"
    opt = torch.optim.SGD(
        net.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
        fused=True if on_gpu else None,  # one kernel for the whole update on CUDA
    )
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg, total_steps))


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches only (no recompiles for a ragged tail); at least one step."""
    return max(1, n // batch_size)


def global_batch(n: int, cfg: TrainConfig, group: Group) -> int:
    """Images per step over all processes: the recipe's batch, or all of a smaller
    dataset, as a multiple of the number of processes."""
    return min(cfg.batch_size, n - n % group.world)


def predict(
    net: nn.Module,
    x: torch.Tensor,
    batch_size: int,
    norm: Normalizer,
    rt: Runtime,
    tta_flip: bool,
    tta_translate: int = 0,
) -> torch.Tensor:
    """float32 logits (N, classes), averaged over the test-time views of `tta_views`."""
    net.eval()
    outs = []
    with torch.inference_mode(), rt.autocast():
        for start in range(0, len(x), batch_size):
            groups = tta_views(norm(x[start : start + batch_size]), tta_flip, tta_translate)
            means = [
                torch.stack([net(v.contiguous(memory_format=norm.memory_format)).float() for v in g]).mean(0)
                for g in groups
            ]
            outs.append(torch.stack(means).mean(0))
    return torch.cat(outs) if outs else torch.empty(0)


def _epoch_generator(device: torch.device, seed: int, epoch: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


def train_epoch(
    model: nn.Module,
    opt,
    sched,
    data: DeviceData,
    cfg: TrainConfig,
    norm: Normalizer,
    rt: Runtime,
    gen: torch.Generator,
    bar,
    group: Group = SOLO,
    ema: Ema | None = None,
) -> tuple[float, float]:
    """One pass over `data`; returns (mean loss, accuracy) on the augmented batches of all ranks."""
    n = len(data.y)
    batch = global_batch(n, cfg, group)
    steps = steps_per_epoch(n, batch)
    mine = group.share(batch)
    perm = torch.randperm(n, generator=gen, device=rt.device)
    loss_sum = torch.zeros((), device=rt.device)
    correct = torch.zeros((), device=rt.device, dtype=torch.int64)
    model.train()
    for step in range(steps):
        idx = perm[step * batch : (step + 1) * batch]
        # Each rank augments the whole global batch (the same draws as one process) and keeps its rows.
        xb = norm(augment(data.x[idx], cfg.augment.pad, cfg.augment.flip, gen)[mine])
        yb = data.y[idx][mine]
        with rt.autocast():
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if ema is not None:
            ema.update(_unwrap(model))
        loss_sum += loss.detach() * len(yb)
        correct += (logits.argmax(1) == yb).sum()
        if group.main and ((step + 1) % cfg.log_every == 0 or step + 1 == steps):  # other ranks never sync
            seen = (step + 1) * len(yb)  # .item() below is the only host sync; this rank's figures
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", acc=f"{correct.item() / seen:.3f}", refresh=False)
            bar.update((step + 1) * batch - bar.n)
    all_sum(loss_sum, correct)
    seen = steps * batch
    return loss_sum.item() / seen, correct.item() / seen


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain network inside torch.compile's and DDP's wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def _wrap(net: nn.Module, rt: Runtime, group: Group) -> nn.Module:
    """What the training steps call: DDP across processes (gradients all-reduced), then compiled."""
    model = net
    if group.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    if not rt.compile:
        return model
    # Given an nn.Module, torch.compile returns an OptimizedModule (an nn.Module); its stubs say Callable.
    return cast(nn.Module, torch.compile(model))


def score(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(cross-entropy, top-1 accuracy) of logits against labels."""
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def fit(
    net: nn.Module,
    train: DeviceData,
    val: DeviceData,
    cfg: TrainConfig,
    norm: Normalizer,
    rt: Runtime,
    ckpt: Checkpoint,
    on_epoch: Callable[[dict, dict], None],
    group: Group = SOLO,
) -> list[dict]:
    """Train `net` in place for cfg.epochs, resuming from `ckpt` when it holds a matching state.

    With cfg.ema, validation uses the averaged weights and `net` ends up holding them.
    Under DDP only rank 0 validates, checkpoints and calls `on_epoch`.
    """
    from tqdm import tqdm

    if rt.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once
    batch = global_batch(len(train.y), cfg, group)
    steps = steps_per_epoch(len(train.y), batch)
    opt, sched = build_optimizer(net, cfg, steps * cfg.epochs)
    ema = Ema(net, cfg.ema) if cfg.ema > 0 else None
    start, history = ckpt.restore(net, opt, sched, ema)
    model = _wrap(net, rt, group)
    for epoch in range(start, cfg.epochs):
        began = time.perf_counter()
        with tqdm(
            total=steps * batch,
            unit="img",
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            mininterval=1.0,
            disable=not group.main,
        ) as bar:
            gen = _epoch_generator(rt.device, cfg.seed, epoch)
            loss, acc = train_epoch(model, opt, sched, train, cfg, norm, rt, gen, bar, group, ema)
        seconds = time.perf_counter() - began
        row = {"epoch": epoch + 1, "train_loss": loss, "train_acc": acc, "lr": opt.param_groups[0]["lr"]}
        if not group.main:
            continue
        if len(val.y):  # val_fraction may be 0
            judged = ema.module if ema else net
            logits = predict(judged, val.x, 1024, norm, rt, cfg.tta_flip, cfg.tta_translate)
            row["val_loss"], row["val_acc"] = score(logits, val.y)
        history.append(row)
        ckpt.save(epoch + 1, net, opt, sched, history, ema)
        images = steps * batch  # over all processes
        on_epoch(row, {"epoch_seconds": seconds, "epoch_images": images, "images_per_s": images / seconds})
    if ema is not None:
        net.load_state_dict(ema.module.state_dict())
    return history
