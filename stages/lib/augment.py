"""Batched augmentation on the device holding the batch: no PIL, no per-image Python.

The training functions take and return uint8 (B, 3, H, W); randomness comes
only from the explicit generator, so a seed fixes every crop and flip.
`tta_views` makes the fixed test-time views of a normalised float batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by `pad` px, then take one random HxW window per image."""
    if pad == 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b, 1), generator=gen, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (b, 1), generator=gen, device=x.device)
    rows = (dy + torch.arange(h, device=x.device)).view(b, 1, h, 1)  # (B, 1, H, 1)
    cols = (dx + torch.arange(w, device=x.device)).view(b, 1, 1, w)  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, chan, rows, cols]


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    mask = torch.rand(x.shape[0], generator=gen, device=x.device) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)


def augment(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    x = random_crop(x, pad, gen)
    return random_flip(x, gen) if flip else x


def tta_views(x: torch.Tensor, flip: bool, shift: int) -> list[list[torch.Tensor]]:
    """Test-time views of float (B, 3, H, W), in groups whose mean logits are averaged.

    Group 1 is the image (and its mirror, with `flip`); with `shift`, group 2 is the
    image moved by `shift` px up-left and down-right over reflect padding (each
    with its mirror): airbench's tta_level 2, where both groups weigh 1/2.
    """

    def with_mirror(v: torch.Tensor) -> list[torch.Tensor]:
        return [v, v.flip(3)] if flip else [v]

    groups = [with_mirror(x)]
    if shift:
        h, w = x.shape[-2:]
        padded = F.pad(x, (shift, shift, shift, shift), mode="reflect")
        groups.append(with_mirror(padded[..., :h, :w]) + with_mirror(padded[..., 2 * shift :, 2 * shift :]))
    return groups
