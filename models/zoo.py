"""Built-in model builders, registered by name."""

from __future__ import annotations

from typing import Any

from .networks import BaselineCNN
from .registry import register_model


@register_model
def baseline_cnn(*, num_classes: int = 7, **kwargs: Any) -> BaselineCNN:
    """The 6-conv baseline at widths 32/64/128: fast enough for live use on a CPU."""
    return BaselineCNN(num_classes, **{"widths": (32, 64, 128), **kwargs})


@register_model
def baseline_cnn_wide(*, num_classes: int = 7, **kwargs: Any) -> BaselineCNN:
    """The 6-conv baseline at the course project's widths 64/128/256."""
    return BaselineCNN(num_classes, **{"widths": (64, 128, 256), **kwargs})
