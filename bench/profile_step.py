"""Claim: none; a diagnosis for issue 22. Where the project's training step spends its time on the
device it runs on, before any speed lever is chosen: kernel time by op, host syncs, launch gaps.

Method: the recipe's net, optimizer and loop (stages.lib.loop.train_epoch, unchanged) on random
uint8 images resident on the device (the step's cost depends on shapes, not pixels). One epoch
of --warmup steps absorbs torch.compile and cuDNN autotuning; one epoch of --steps steps is timed
without the profiler (step_ms, img_per_s); one more runs under torch.profiler (CPU, and CUDA
when present). From that trace:
- top_ops: self time on the device per op (CUDA kernels; CPU ops on a CPU run), ms per step;
- host_syncs: calls of cudaStreamSynchronize, cudaDeviceSynchronize, cudaEventSynchronize,
  aten::item and aten::_local_scalar_dense (item calls it: one .item() counts in both);
- the device timeline: the union of kernel intervals (on CPU: top-level ops) over the
  profiled span: busy fraction, idle ms per step, the number of gaps over 10 us and the
  largest ones (launch gaps: the device waiting for the host).
The profiled epoch includes the harness's own two synchronisations around it (cudaDeviceSynchronize)
and train_epoch's: a pair of .item() every log_every steps and at the last step, one more pair at
the epoch's end for the figures it returns.
--steps defaults to train.log_every on CUDA, so one progress-bar sync period is covered.
Writes --out/trace-MODEL.json.gz (Chrome trace; open in ui.perfetto.dev) and
--out/profile-MODEL.txt (the profiler's table), and prints one JSON line.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from tqdm import tqdm

from bench._common import commit, device_name, sync
from bench.time_to_accuracy import load_config
from bench.train_throughput import ROOT
from stages.lib import device, loop, model

SYNC_NAMES = (
    "cudaStreamSynchronize",
    "cudaDeviceSynchronize",
    "cudaEventSynchronize",
    "aten::item",
    "aten::_local_scalar_dense",
)
GAP_US = 10.0  # idle stretches shorter than this are kernel-to-kernel noise, not a waiting device


def host_syncs(names: Iterable[str]) -> dict[str, int]:
    """How often each host-sync call occurs among event names (every SYNC_NAMES key, 0 if absent)."""
    counts = dict.fromkeys(SYNC_NAMES, 0)
    for name in names:
        if name in counts:
            counts[name] += 1
    return counts


def timeline(intervals: Iterable[tuple[float, float]], steps: int, top: int = 5) -> dict:
    """Busy/idle split of (start_us, end_us) intervals that may overlap (concurrent streams):
    idle = time inside the span covered by none of them."""
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if not merged:
        return {"busy_fraction": None, "idle_ms_per_step": None, "gaps_over_10us": 0, "largest_gaps_us": []}
    span = merged[-1][1] - merged[0][0]
    busy = sum(end - start for start, end in merged)
    gaps = sorted((b[0] - a[1] for a, b in zip(merged, merged[1:])), reverse=True)
    return {
        "busy_fraction": round(busy / span, 4) if span else 1.0,
        "idle_ms_per_step": round((span - busy) / 1e3 / max(1, steps), 3),
        "gaps_over_10us": sum(g > GAP_US for g in gaps),
        "largest_gaps_us": [round(g, 1) for g in gaps[:top]],
    }


def top_ops(averages, cuda: bool, steps: int, top: int = 12) -> list[dict]:
    """The ops with the most self time on the device (CPU time on a CPU run), per step."""
    if cuda:
        own = lambda e: getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)  # noqa: E731
    else:
        own = lambda e: e.self_cpu_time_total  # noqa: E731
    rows = sorted(averages, key=own, reverse=True)[:top]
    return [
        {"op": e.key, "ms_per_step": round(own(e) / 1e3 / steps, 3), "calls_per_step": round(e.count / steps, 2)}
        for e in rows
        if own(e) > 0
    ]


def _device_intervals(events, cuda: bool) -> list[tuple[float, float]]:
    """CUDA kernels (and device memcpy/memset), or on CPU the top-level ops of the main thread."""
    if cuda:
        chosen = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    else:
        chosen = [e for e in events if e.cpu_parent is None and not e.name.startswith("ProfilerStep")]
    return [(e.time_range.start, e.time_range.end) for e in chosen]


def _args(cuda: bool) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="fast", help="a key of params.yaml's recipes (default: fast)")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--model", choices=sorted(model.ARCHITECTURES), help="override the recipe's net")
    ap.add_argument(
        "--batch-size", type=int, default=None if cuda else 32, help="override the recipe's (CPU default: 32)"
    )
    ap.add_argument("--warmup", type=int, default=3 if cuda else 1, help="steps before timing (compile)")
    ap.add_argument("--steps", type=int, help="profiled steps (default: train.log_every on CUDA, 2 on CPU)")
    ap.add_argument("--compile", choices=["auto", "on", "off"], help="override train.compile")
    ap.add_argument("--out", type=Path, default=Path("."), help="folder for the trace and the table")
    return ap.parse_args()


def _epoch(net, cfg, rt, norm, images: int, seed: int) -> float:
    """Seconds for one train_epoch over `images` random images (fresh optimizer: timing only)."""
    gen = torch.Generator(device=rt.device).manual_seed(seed)
    x = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, device=rt.device, generator=gen)
    y = torch.randint(0, 100, (images,), device=rt.device, generator=gen)
    opt, sched = loop.build_optimizer(getattr(net, "_orig_mod", net), cfg, 10**6)
    sync(rt.device)
    began = time.perf_counter()
    loop.train_epoch(net, opt, sched, loop.DeviceData(x, y), cfg, norm, rt, gen, tqdm(disable=True))
    sync(rt.device)
    return time.perf_counter() - began


def _write(prof, out: Path, name: str, cuda: bool) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    trace, table = out / f"trace-{name}.json.gz", out / f"profile-{name}.txt"
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(raw))
        with open(raw, "rb") as src, gzip.open(trace, "wb") as dst:
            shutil.copyfileobj(src, dst)
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    table.write_text(prof.key_averages().table(sort_by=sort, row_limit=40) + "\n")
    return trace, table


def profile(cfg, rt, warmup: int, steps: int):
    """(profiler, seconds of the unprofiled timed epoch, seconds of the warm-up epoch)."""
    cuda = rt.device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # as loop.fit sets it
    torch.manual_seed(cfg.seed)
    net = model.build(cfg.model, 100).to(rt.device, memory_format=rt.memory_format)
    wrapped = torch.compile(net) if rt.compile else net
    norm = loop.Normalizer([0.5] * 3, [0.25] * 3, rt)  # any standardisation: the pixels are random
    warmup_s = _epoch(wrapped, cfg, rt, norm, cfg.batch_size * warmup, 1)
    seconds = _epoch(wrapped, cfg, rt, norm, cfg.batch_size * steps, 2)
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        _epoch(wrapped, cfg, rt, norm, cfg.batch_size * steps, 3)
    return prof, seconds, warmup_s


def main() -> None:
    cuda = torch.cuda.is_available()
    args = _args(cuda)
    cfg = load_config(args.params, args.recipe, model=args.model, batch_size=args.batch_size, compile=args.compile)
    rt = device.resolve(cfg)
    steps = args.steps or (cfg.log_every if cuda else 2)
    prof, seconds, warmup_s = profile(cfg, rt, args.warmup, steps)
    events = prof.events()
    trace, table = _write(prof, args.out, cfg.model, cuda)
    line = {
        "device": device_name(rt.device),
        "model": cfg.model,
        "recipe": cfg.recipe,
        "batch_size": cfg.batch_size,
        "steps": steps,
        "step_ms": round(seconds / steps * 1e3, 3),
        "img_per_s": round(cfg.batch_size * steps / seconds, 1),
        "warmup_seconds": round(warmup_s, 3),
        "host_syncs": host_syncs(e.name for e in events),
        "timeline": "cuda kernels" if cuda else "cpu top-level ops",
        **timeline(_device_intervals(events, cuda), steps),
        "top_ops": top_ops(prof.key_averages(), cuda, steps),
        "precision": "bf16" if rt.bf16 else "fp32",
        "compile": rt.compile,
        "channels_last": rt.channels_last,
        "trace": trace.name,
        "table": table.name,
        "torch": torch.__version__,
        "commit": commit(ROOT),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
