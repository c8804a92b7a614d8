"""Where and how training runs: device, autocast precision, compile, memory layout."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import sys
from dataclasses import dataclass

import torch

from stages.lib.cli import PipelineError
from stages.lib.params import TrainConfig


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    bf16: bool  # autocast matmuls/convs to bfloat16
    compile: bool
    channels_last: bool

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def compile_blocker(device: torch.device) -> str | None:
    """Why torch.compile (TorchDynamo + Inductor) cannot run on `device` here; None when it can."""
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        return (
            f"TorchDynamo does not support Python {sys.version_info.major}.{sys.version_info.minor} on {sys.platform}"
        )
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "Inductor needs Triton for this GPU, and it is missing or the GPU is too old"
    cxx = os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")  # what Inductor runs
    return None if shutil.which(cxx) else f"Inductor needs a C++ compiler for CPU code and {cxx!r} is not on PATH"


def _wants_compile(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.compile == "off" or (cfg.compile == "auto" and device.type != "cuda"):
        return False
    reason = compile_blocker(device)
    if reason and cfg.compile == "on":
        raise PipelineError(
            f"params.yaml: train.compile is on, but torch.compile cannot run on {device.type}: {reason}"
        )
    if reason:
        print(f"train: running eagerly: {reason}")
    return reason is None


def resolve(cfg: TrainConfig, local_rank: int = 0) -> Runtime:
    """Turn the `auto` settings into concrete choices for this machine (GPU `local_rank` under torchrun)."""
    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        raise PipelineError("params.yaml: train.device is cuda, but no CUDA device is visible")
    on_gpu = cfg.device == "cuda" or (cfg.device == "auto" and cuda)
    device = torch.device("cuda", local_rank) if on_gpu else torch.device("cpu")
    return Runtime(
        device=device,
        bf16=cfg.precision == "bf16" or (cfg.precision == "auto" and on_gpu),
        compile=_wants_compile(cfg, device),
        channels_last=cfg.channels_last,
    )


def describe(rt: Runtime) -> dict[str, str]:
    """Provenance for MLflow tags: what hardware and software produced a run."""
    info = {
        "device": str(rt.device),
        "device.name": torch.cuda.get_device_name(rt.device)
        if rt.device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch.version": torch.__version__,
        "torch.cuda": str(torch.version.cuda),
        "precision": "bf16" if rt.bf16 else "fp32",
        "compile": str(rt.compile),
    }
    if rt.device.type == "cuda":
        info["device.count"] = str(torch.cuda.device_count())
    return info
