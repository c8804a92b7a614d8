"""Network definitions and the serving wrapper. Nets take normalised float
(N, 3, 32, 32) and return logits (N, classes)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(cin, cout, stride),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet18(num_classes: int) -> nn.Module:
    """CIFAR ResNet-18: 3x3 stem, no max-pool, so 32x32 maps reach the first stage."""
    layers: list[nn.Module] = [_conv_bn(3, 64)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(channels, channels), _conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def resnet9(num_classes: int) -> nn.Module:
    """The ResNet-9 of the DAWNBench/airbench CIFAR speedruns (Page, 2018)."""
    return nn.Sequential(
        _conv_bn(3, 64),
        _conv_bn(64, 128),
        nn.MaxPool2d(2),
        _Residual(128),
        _conv_bn(128, 256),
        nn.MaxPool2d(2),
        _conv_bn(256, 512),
        nn.MaxPool2d(2),
        _Residual(512),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(512, num_classes, bias=False),
        _Scale(0.125),  # tempers early logits; from the speedruns
    )


def small(num_classes: int) -> nn.Module:
    """A few-thousand-images-per-second CPU net for tests and smoke runs."""
    return nn.Sequential(
        _conv_bn(3, 32),
        nn.MaxPool2d(2),
        _conv_bn(32, 64),
        nn.MaxPool2d(2),
        _conv_bn(64, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, num_classes),
    )


ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {
    "resnet18": resnet18,
    "resnet9": resnet9,
    "small": small,
}


def build(name: str, num_classes: int) -> nn.Module:
    return ARCHITECTURES[name](num_classes)


class ServingModel(nn.Module):
    """Raw images in, class probabilities out: uint8 (N, 32, 32, 3) -> float32 (N, classes).

    Normalisation travels inside the model, so a registered version needs no
    preprocessing code on the caller's side.
    """

    # Buffers (register_buffer), (1, 3, 1, 1) float32 in 0..255 pixel units; declared for the type checker only.
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(self._normalise(images)), dim=1)

    def forward_with_embedding(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (N, 32, 32, 3) -> (probs (N, C) float32, embedding (N, D)): D is the width that
        feeds the last Linear layer (the penultimate layer); probs equal forward()'s."""
        net, head = _split_at_head(self.net)
        embedding = net[:head](self._normalise(images))
        return torch.softmax(net[head:](embedding), dim=1), embedding

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images.permute(0, 3, 1, 2).float() - self.mean) / self.std


def _split_at_head(net: nn.Module) -> tuple[nn.Sequential, int]:
    """The Sequential net and the index of its last Linear layer: what comes before it is the embedding."""
    if not isinstance(net, nn.Sequential):
        raise TypeError(f"forward_with_embedding needs an nn.Sequential net, got {type(net).__name__}")
    linear = [i for i, layer in enumerate(net) if isinstance(layer, nn.Linear)]
    if not linear:
        raise TypeError("forward_with_embedding needs a net with a Linear classifier layer")
    return net, linear[-1]
