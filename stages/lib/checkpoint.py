"""Epoch checkpoints, so an interrupted train stage resumes where it stopped.

A checkpoint carries a fingerprint of everything that shapes training (train
params and the data's identity); a checkpoint from other settings is ignored
rather than resumed, so resuming can never mix two configurations.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch

from stages.lib import fsio


def fingerprint(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class Checkpoint:
    def __init__(self, directory: str | Path, key: str, extra: dict | None = None):
        self.path = Path(directory) / f"train-{key}.pt"
        self.key = key
        self.extra = dict(extra or {})  # e.g. the MLflow run id to resume

    def peek(self) -> dict | None:
        """The stored state, if one exists for this fingerprint."""
        if not self.path.is_file():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        return state if state.get("key") == self.key else None

    def restore(self, net: torch.nn.Module, opt, sched, ema=None) -> tuple[int, list[dict]]:
        """Load a matching state into net/opt/sched (and the weight average); return (next epoch, history)."""
        state = self.peek()
        if state is None:
            return 0, []
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        print(f"train: resuming after epoch {state['epoch']} from {self.path}")
        return state["epoch"], list(state["history"])

    def save(self, epoch: int, net: torch.nn.Module, opt, sched, history: list[dict], ema=None) -> None:
        buf = io.BytesIO()
        torch.save(
            {
                "key": self.key,
                "epoch": epoch,
                "model": net.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "history": history,
                "extra": self.extra,
                "ema": ema.state_dict() if ema is not None else None,
            },
            buf,
        )
        fsio.write_bytes(self.path, buf.getvalue())

    def clear(self) -> None:
        """Drop the checkpoint after a finished run, and its folder when nothing else is in it."""
        fsio.remove(self.path)
        try:
            self.path.parent.rmdir()
        except OSError:  # not empty (another fingerprint's checkpoint) or already gone
            pass
