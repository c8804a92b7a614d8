"""Data parallelism across processes: re-running the train stage under torchrun
when several GPUs are visible, and one process's place in the group.

Under torchrun each process holds the whole (uint8) dataset on its device and
walks the same shuffled order; every step each rank takes its own slice of the
global batch, so W processes see per epoch exactly the samples one process
does. Only rank 0 logs, checkpoints and writes outputs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from stages.lib.cli import PipelineError
from stages.lib.params import TrainConfig


@dataclass(frozen=True)
class Group:
    rank: int
    local_rank: int  # GPU index on this machine
    world: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Group:
        """This process's place, from the variables torchrun sets (one process when unset)."""
        env = os.environ
        return cls(int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0")), int(env.get("WORLD_SIZE", "1")))

    def check(self, cfg: TrainConfig) -> None:
        if cfg.batch_size % self.world:
            raise PipelineError(
                f"params.yaml: recipes.{cfg.recipe}.batch_size {cfg.batch_size} does not split "
                f"evenly over {self.world} processes"
            )

    def share(self, batch: int) -> slice:
        """This rank's rows of a global batch of `batch` rows (a multiple of world)."""
        size = batch // self.world
        return slice(self.rank * size, (self.rank + 1) * size)


SOLO = Group(0, 0, 1)


def processes_to_launch(cfg: TrainConfig) -> int:
    """How many torchrun processes to start: one per visible GPU when there are several
    and this process is not already one of torchrun's; 0 = train in this process."""
    import torch

    if "WORLD_SIZE" in os.environ or cfg.distributed == "off" or cfg.device == "cpu":
        return 0
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return count if count > 1 else 0


def torchrun_command(processes: int, module: str, argv: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        module,
        *argv,
    ]


def relaunch(processes: int, module: str, argv: Sequence[str]) -> int:
    """Run `python -m module argv` as `processes` torchrun workers; return torchrun's exit code.

    SIGTERM here becomes SIGTERM to torchrun, which stops its workers before exiting.
    """
    # Workers run `python -m module` in this cwd (the project), so they import this same package.
    proc = subprocess.Popen(torchrun_command(processes, module, argv))
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except BaseException:  # Ctrl-C: torchrun stops its workers on SIGTERM, then exits
        proc.terminate()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:  # never leave torchrun and its GPU workers behind
            proc.kill()
            proc.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def joined(group: Group, device) -> Iterator[Group]:
    """Join the process group for the span of training: NCCL between GPUs, Gloo on CPU."""
    if group.world == 1:
        yield group
        return
    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None
    )
    try:
        yield group
    finally:
        dist.destroy_process_group()


def all_sum(*values):
    """Sum each scalar tensor over the group, in place (a no-op in one process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        for value in values:
            dist.all_reduce(value)
    return values
