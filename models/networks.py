"""Network definitions (PyTorch). Imported only by training and export, never by the runtime."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .info import TTA_MODES


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


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers with an identity (or 1x1 projection) shortcut, ReLU after the sum.

    ``se_reduction`` > 0 adds squeeze-and-excitation (torchvision's ``SqueezeExcitation``) on the residual branch,
    before the sum: a global-average-pooled channel gate with ``max(8, out_channels // se_reduction)`` hidden units.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, se_reduction: int = 0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.se: nn.Module = nn.Identity()
        if se_reduction > 0:
            from torchvision.ops import SqueezeExcitation  # only SE networks need torchvision

            self.se = SqueezeExcitation(out_channels, max(8, out_channels // se_reduction))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return self.relu(out + self.shortcut(x))


class FaceResNet(nn.Module):
    """A residual network sized for 48x48 face crops.

    A 3x3 stem at full resolution, then one stage per entry of ``widths``/``depths``; every stage starts
    with a stride-2 block, so four stages take 48 -> 24 -> 12 -> 6 -> 3. Global average pooling gives the
    ``num_features``-long vector that ``forward_features`` returns; the head is dropout + linear.
    ``se_reduction`` > 0 gives every block a squeeze-and-excitation gate (see :class:`BasicBlock`); 0 leaves it out.
    """

    def __init__(self, num_classes: int = 7, *, widths: Sequence[int] = (64, 128, 256, 512), depths: Sequence[int] = (2, 2, 2, 2),
                 stem: int = 32, dropout: float = 0.3, in_channels: int = 1, se_reduction: int = 0) -> None:
        super().__init__()
        if len(widths) != len(depths) or not widths:
            raise ValueError(f"widths and depths need one entry per stage, got {tuple(widths)} and {tuple(depths)}")
        if se_reduction < 0:
            raise ValueError(f"se_reduction must be 0 (no squeeze-and-excitation) or positive, got {se_reduction}")
        self.stem = conv_bn_relu(in_channels, stem)
        stages: list[nn.Module] = []
        channels = stem
        for width, depth in zip(widths, depths):
            blocks = [BasicBlock(channels, width, stride=2, se_reduction=se_reduction)]
            blocks += [BasicBlock(width, width, se_reduction=se_reduction) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))
        self.num_features = channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        for module in self.modules():  # zero-init the last BN of each block: every block starts as identity
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class MLP(nn.Module):
    """Multilayer perceptron on the raw pixels: the floor any convolutional model must beat.

    flatten -> (Linear -> BN -> ReLU -> Dropout) per entry of ``hidden`` -> Linear(num_classes).
    ``forward_features`` returns the last hidden vector.
    """

    def __init__(self, num_classes: int = 7, *, hidden: Sequence[int] = (1024, 512), dropout: float = 0.3,
                 input_size: int = 48, in_channels: int = 1) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("hidden needs at least one layer width")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * input_size * input_size
        for i, size in enumerate(hidden):
            if i:
                layers.append(nn.Dropout(dropout))
            layers += [nn.Linear(width, size, bias=False), nn.BatchNorm1d(size), nn.ReLU(inplace=True)]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))
        self.num_features = width

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


ZOOM_BORDER = 1 / 24
"""``hflip_zoom``'s zoomed view drops this fraction of the side at each border (2 of 48 pixels) and scales the rest back up."""


class TestTimeViews(nn.Module):
    """Test-time augmentation inside the graph: average each face's logits (and penultimate features) over views.

    ``hflip``: the face and its mirror image. ``hflip_zoom``: those two plus the face zoomed in (its central
    part without a :data:`ZOOM_BORDER` frame, resized back to full size) and that zoom's mirror. All views go
    through the network as one batch.
    """

    def __init__(self, model: nn.Module, mode: str = "hflip") -> None:
        super().__init__()
        if mode == "none" or mode not in TTA_MODES:
            raise ValueError(f"test-time views must be one of {', '.join(TTA_MODES[1:])}, got {mode!r}")
        self.model, self.mode = model, mode

    @property
    def num_views(self) -> int:
        return 4 if self.mode == "hflip_zoom" else 2

    def views(self, x: torch.Tensor) -> torch.Tensor:
        """The views of a batch (N, C, S, S), stacked view after view: (V * N, C, S, S)."""
        views = [x]
        if self.mode == "hflip_zoom":
            height, width = x.shape[-2], x.shape[-1]
            border = max(1, round(width * ZOOM_BORDER))
            inner = x[:, :, border:height - border, border:width - border]
            views.append(nn.functional.interpolate(inner, size=(height, width), mode="bilinear", align_corners=False))
        return torch.cat(views + [torch.flip(v, dims=[3]) for v in views])

    def _mean(self, stacked: torch.Tensor) -> torch.Tensor:
        return stacked.reshape(self.num_views, -1, stacked.shape[-1]).mean(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._mean(self.model(self.views(x)))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Averaged logits (as ``forward``) and the average of the views' penultimate features."""
        features = self.model.forward_features(self.views(x))
        return self._mean(self.model.forward_head(features)), self._mean(features)


def with_test_time_views(model: nn.Module, mode: str) -> nn.Module:
    """``model`` wrapped in :class:`TestTimeViews` for ``mode`` (a :data:`~emolive.models.info.TTA_MODES` entry); ``none`` returns it as is."""
    return model if mode == "none" else TestTimeViews(model, mode)


class LogitsAndFeatures(nn.Module):
    """Export wrapper: ``x -> (logits, penultimate features)`` for a network with ``forward_features``/``forward_head``
    (or a :class:`TestTimeViews` around one)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.model, TestTimeViews):
            return self.model.forward_with_features(x)
        features = self.model.forward_features(x)
        return self.model.forward_head(features), features


def has_features(model: nn.Module) -> bool:
    """Whether ``model`` (or the network inside a :class:`TestTimeViews`) exposes penultimate features."""
    inner = model.model if isinstance(model, TestTimeViews) else model
    return hasattr(inner, "forward_features") and hasattr(inner, "forward_head")
