"""Network definitions (PyTorch). Imported only by training and export, never by the runtime."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class BaselineCNN(nn.Module):
    """Six 3x3 conv layers (BN + ReLU) in three pairs, max-pool after each pair, dropout, FC head.

    The course-project architecture. ``widths`` sets the channels of the three pairs; the head is
    flatten -> Linear(hidden) -> ReLU -> Dropout -> Linear(num_classes). ``forward_features`` returns
    the hidden vector (the penultimate features a temporal head can consume).
    """

    def __init__(self, num_classes: int = 7, *, widths: Sequence[int] = (32, 64, 128), hidden: int = 256,
                 dropout: float = 0.4, block_dropout: float = 0.1, input_size: int = 48, in_channels: int = 1) -> None:
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"widths must have 3 entries (one per conv pair), got {tuple(widths)}")
        if input_size % 8:
            raise ValueError(f"input_size must be divisible by 8, got {input_size}")
        blocks: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            blocks += [conv_bn_relu(channels, width), conv_bn_relu(width, width), nn.MaxPool2d(2), nn.Dropout2d(block_dropout)]
            channels = width
        self.features = nn.Sequential(*blocks)
        side = input_size // 8
        self.neck = nn.Sequential(nn.Flatten(), nn.Linear(channels * side * side, hidden), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_classes))
        self.num_features = hidden

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.features(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class HFlipAverage(nn.Module):
    """Test-time augmentation: average the logits of each face and its mirror image (one graph)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.model(x) + self.model(torch.flip(x, dims=[3])))
