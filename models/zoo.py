"""Built-in model builders, registered by name."""

from __future__ import annotations

from typing import Any

from .networks import BaselineCNN, FaceResNet
from .registry import register_model


@register_model
def baseline_cnn(*, num_classes: int = 7, **kwargs: Any) -> BaselineCNN:
    """The 6-conv baseline at widths 32/64/128: fast enough for live use on a CPU."""
    return BaselineCNN(num_classes, **{"widths": (32, 64, 128), **kwargs})


@register_model
def baseline_cnn_wide(*, num_classes: int = 7, **kwargs: Any) -> BaselineCNN:
    """The 6-conv baseline at the course project's widths 64/128/256."""
    return BaselineCNN(num_classes, **{"widths": (64, 128, 256), **kwargs})


@register_model
def face_resnet_s(*, num_classes: int = 7, **kwargs: Any) -> FaceResNet:
    """Small residual network (widths 32-256, 5 blocks): the fast candidate for live use."""
    return FaceResNet(num_classes, **{"widths": (32, 64, 128, 256), "depths": (1, 1, 2, 1), "stem": 32, **kwargs})


@register_model
def face_resnet_m(*, num_classes: int = 7, **kwargs: Any) -> FaceResNet:
    """ResNet-18-like residual network (widths 64-512, 8 blocks): the accurate candidate for offline use."""
    return FaceResNet(num_classes, **{"widths": (64, 128, 256, 512), "depths": (2, 2, 2, 2), "stem": 32, **kwargs})
