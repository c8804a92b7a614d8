"""Claim: the project's training loop feeds a model faster than the usual torchvision
input pipeline. Goals: on an H100, CIFAR ResNet-18 at >= 80k img/s and >= 2.5x the
DataLoader baseline; on CPU, >= 1.0x.

Measured, in one process, on the same images, model, batch, optimizer, device, autocast,
channels_last and torch.compile choice:
- project: stages.lib.loop.train_epoch (uint8 images resident on the device, crop+flip
  batched on the device, normalisation per batch, one host sync per log_every steps);
- baseline: torchvision.datasets.CIFAR100 reading the python pickles, through
  RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize, and a DataLoader
  with --workers worker processes (pinned memory and non-blocking copies on CUDA).
Both run --steps optimizer steps per round; rounds alternate (--repeats, after one
warm-up round each, which also absorbs torch.compile) and the fastest of each counts.

Data: a cifar-100-python folder unpacked from --archive (the real CIFAR-100; default
$CIFAR100_DIR/cifar-100-python.tar.gz, CIFAR100_DIR defaulting to ../shared/cifar100
relative to the project, when present), else written from the
synthetic generator. Neither carries the official per-file md5s, so the dataset is
torchvision's CIFAR100 with those checks off; loading and transforms are unchanged.

TFLOP/s = img/s x training FLOP per image: 3.33 GFLOP for CIFAR ResNet-18 (the issue's
figure; torch.utils.flop_counter measures 3.329 for forward + backward); other models use
that counter's forward + backward figure (resnet9: 2.27 GFLOP, small: 0.060 GFLOP).
Peak: dense bf16 tensor-core TFLOP/s from the vendor's sheet for known GPUs; none on CPU.
Prints one JSON line: device, model, project_img_s, baseline_img_s, ratio, tflops (the
project's), peak_tflops, peak_fraction, plus the settings used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from bench._common import alternating_best, sync
from stages.lib import cifar_pickles, device, loop, model, params, synthetic

ROOT = Path(__file__).resolve().parent.parent

# The real dataset's folder: $CIFAR100_DIR, else ../shared/cifar100 next to the project.
DATA_DIR_DEFAULT = "../shared/cifar100"
ARCHIVE_NAME = "cifar-100-python.tar.gz"
RESNET18_GFLOP = 3.33
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("GH200", 989.4),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10G", 70.0),
)
MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)  # CIFAR-100 train, [0, 1] units


def cifar_folder(root: Path, archive: Path | None, synthetic_images: int) -> str:
    """Put a cifar-100-python/ folder under root; return where it came from."""
    if archive is not None:
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
        return f"cifar100 ({archive.name})"
    cfg = params.SyntheticParams(train_per_class=max(2, synthetic_images // 100), test_per_class=1, noise=24.0, seed=0)
    cifar_pickles.write_pickles(root, synthetic.generate(cfg))
    return "synthetic"


def torchvision_cifar100(root: Path):
    from torchvision import transforms
    from torchvision.datasets import CIFAR100

    class Unchecked(CIFAR100):
        train_list = [["train", None]]  # md5 None: check_integrity only asks that the file exists
        test_list = [["test", None]]
        meta = {**CIFAR100.meta, "md5": None}

    augment = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )
    return Unchecked(str(root), train=True, transform=augment, download=False)


def gflop_per_image(name: str) -> float:
    if name == "resnet18":
        return RESNET18_GFLOP
    from torch.utils.flop_counter import FlopCounterMode

    net = model.build(name, 100)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(net(torch.randn(2, 3, 32, 32)), torch.tensor([0, 1])).backward()
    return counter.get_total_flops() / 2 / 1e9


def peak_tflops(rt) -> float | None:
    if rt.device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(rt.device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


def _setup(cfg, rt, total_steps: int):
    """A fresh net (same init every time), wrapped as training runs it, with its optimizer."""
    torch.manual_seed(cfg.seed)
    net = model.build(cfg.model, 100).to(rt.device, memory_format=rt.memory_format)
    opt, sched = loop.build_optimizer(net, cfg, total_steps)
    return (torch.compile(net) if rt.compile else net), opt, sched


def project_round(cfg, rt, data):
    """train_epoch over `data`, sized to exactly --steps batches, resident on the device."""
    net, opt, sched = _setup(cfg, rt, 10**6)
    norm = loop.Normalizer(list(MEAN), list(STD), rt)
    gen = torch.Generator(device=rt.device).manual_seed(0)

    def run() -> None:
        loop.train_epoch(net, opt, sched, data, cfg, norm, rt, gen, tqdm(disable=True))
        sync(rt.device)

    return run


def baseline_round(cfg, rt, ds, steps: int, workers: int):
    """The same steps fed by a torchvision DataLoader."""
    from torch.utils.data import DataLoader

    net, opt, sched = _setup(cfg, rt, 10**6)
    cuda = rt.device.type == "cuda"
    loader = DataLoader(
        ds,
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=cuda,
        persistent_workers=workers > 0,
    )
    batches = iter(loader)

    def run() -> None:
        nonlocal batches
        net.train()
        for _ in range(steps):
            try:
                x, y = next(batches)
            except StopIteration:
                batches = iter(loader)
                x, y = next(batches)
            x = x.to(rt.device, non_blocking=cuda).contiguous(memory_format=rt.memory_format)
            y = y.to(rt.device, non_blocking=cuda)
            with rt.autocast():
                loss = F.cross_entropy(net(x), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        sync(rt.device)

    return run


def default_archive(env: dict[str, str] | None = None) -> Path | None:
    """The real archive under $CIFAR100_DIR (relative paths from the project root), if present."""
    folder = Path((os.environ if env is None else env).get("CIFAR100_DIR") or DATA_DIR_DEFAULT)
    archive = (folder if folder.is_absolute() else ROOT / folder) / ARCHIVE_NAME
    return archive if archive.is_file() else None


def _args(cuda: bool) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18", choices=sorted(model.ARCHITECTURES))
    ap.add_argument("--batch-size", type=int, default=512 if cuda else 64)
    ap.add_argument("--steps", type=int, default=100 if cuda else 6, help="optimizer steps per timed round")
    ap.add_argument("--repeats", type=int, default=5 if cuda else 3, help="timed rounds of each, alternating")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader workers")
    ap.add_argument(
        "--archive",
        type=Path,
        default=default_archive(),
        help=f"a {ARCHIVE_NAME} (default: $CIFAR100_DIR/{ARCHIVE_NAME}, CIFAR100_DIR defaulting to "
        f"{DATA_DIR_DEFAULT} from the project, when present; else synthetic data)",
    )
    ap.add_argument("--synthetic", action="store_true", help="use synthetic images even when the archive exists")
    ap.add_argument("--synthetic-images", type=int, default=5000)
    ap.add_argument("--compile", choices=["auto", "on", "off"], default="auto")
    return ap.parse_args()


def main() -> None:
    args = _args(torch.cuda.is_available())
    cfg = params.train_config(params.load(ROOT / "params.yaml"))
    cfg = dataclasses.replace(cfg, model=args.model, batch_size=args.batch_size, compile=args.compile)
    rt = device.resolve(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        source = cifar_folder(Path(tmp), None if args.synthetic else args.archive, args.synthetic_images)
        ds = torchvision_cifar100(Path(tmp))
        n = args.steps * args.batch_size
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # the same uint8 images, NCHW
        pick = torch.arange(n) % len(images)
        data = loop.DeviceData(images[pick].to(rt.device), torch.tensor(ds.targets)[pick].to(rt.device))
        project = project_round(cfg, rt, data)
        baseline = baseline_round(cfg, rt, ds, args.steps, args.workers)
        project(), baseline()  # warm-up: torch.compile, cuDNN autotuning, worker start-up
        project_s, baseline_s = alternating_best(project, baseline, args.repeats)
    project_ips, baseline_ips = n / project_s, n / baseline_s
    gflop, peak = gflop_per_image(args.model), peak_tflops(rt)
    tflops = project_ips * gflop / 1e3
    name = (
        torch.cuda.get_device_name(rt.device)
        if rt.device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    print(f"data: {source}; {gflop:.3f} GFLOP per training image; device {name}", file=sys.stderr)
    print(
        json.dumps(
            {
                "device": name,
                "model": args.model,
                "project_img_s": round(project_ips, 1),
                "baseline_img_s": round(baseline_ips, 1),
                "ratio": round(project_ips / baseline_ips, 3),
                "tflops": round(tflops, 3),
                "peak_tflops": peak,
                "peak_fraction": round(tflops / peak, 4) if peak else None,
                "gflop_per_image": round(gflop, 3),
                "batch_size": args.batch_size,
                "steps": args.steps,
                "workers": args.workers,
                "precision": "bf16" if rt.bf16 else "fp32",
                "compile": rt.compile,
                "channels_last": rt.channels_last,
                "data": source,
            }
        )
    )


if __name__ == "__main__":
    main()
