"""An exponential moving average of a network's weights and BatchNorm statistics.

Updated on the device with fused foreach ops and no host sync, so it costs one
extra pass over the weights per step.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class Ema:
    def __init__(self, net: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(net).eval().requires_grad_(False)
        self.updates = 0  # a host-side count: the warm-up below needs no device read
        self._pairs: tuple | None = None

    def _tensors(self, net: nn.Module) -> tuple[list[torch.Tensor], ...]:
        """(EMA floats, live floats, EMA integers, live integers) in matching order.

        Collected once: the optimizer and load_state_dict update these tensors in place.
        """
        if self._pairs is None:
            ours, theirs = self.module.state_dict().values(), net.state_dict().values()
            floats = [(a, b) for a, b in zip(ours, theirs) if a.is_floating_point()]
            ints = [(a, b) for a, b in zip(ours, theirs) if not a.is_floating_point()]
            self._pairs = ([a for a, _ in floats], [b for _, b in floats], [a for a, _ in ints], [b for _, b in ints])
        return self._pairs

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        # Early on, the average would be mostly random init: ramp the decay up as in TF's EMA.
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_f, live_f, ema_i, live_i = self._tensors(net)
        torch._foreach_lerp_(ema_f, live_f, 1 - decay)
        if ema_i:  # BatchNorm's num_batches_tracked, in one fused copy
            torch._foreach_copy_(ema_i, live_i)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = state["updates"]
