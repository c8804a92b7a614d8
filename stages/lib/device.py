"""Where and how training runs: device, autocast precision, compile, memory layout."""
from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass

import torch

from stages.lib.cli import PipelineError
from stages.lib.params import TrainParams


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


def resolve(cfg: TrainParams) -> Runtime:
    """Turn the `auto` settings into concrete choices for this machine."""
    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        raise PipelineError("params.yaml: train.device is cuda, but no CUDA device is visible")
    device = torch.device("cuda" if cfg.device == "cuda" or (cfg.device == "auto" and cuda) else "cpu")
    on_gpu = device.type == "cuda"
    return Runtime(
        device=device,
        bf16=cfg.precision == "bf16" or (cfg.precision == "auto" and on_gpu),
        compile=cfg.compile == "on" or (cfg.compile == "auto" and on_gpu),
        channels_last=cfg.channels_last,
    )


def describe(rt: Runtime) -> dict[str, str]:
    """Provenance for MLflow tags: what hardware and software produced a run."""
    info = {
        "device": str(rt.device),
        "device.name": torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else platform.processor() or platform.machine(),
        "torch.version": torch.__version__,
        "torch.cuda": str(torch.version.cuda),
        "precision": "bf16" if rt.bf16 else "fp32",
        "compile": str(rt.compile),
    }
    if rt.device.type == "cuda":
        info["device.count"] = str(torch.cuda.device_count())
    return info
