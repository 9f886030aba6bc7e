"""Built-in model builders, registered by name."""

from __future__ import annotations

from typing import Any

from torch import nn

from .ensemble import ProbabilityEnsemble, build_ensemble
from .networks import MLP, BaselineCNN, FaceResNet
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


@register_model
def mlp(*, num_classes: int = 7, **kwargs: Any) -> MLP:
    """Pixel MLP (hidden 1024, 512): the no-convolution baseline."""
    return MLP(num_classes, **kwargs)


def _transfer(backbone: str, num_classes: int, kwargs: dict[str, Any]) -> nn.Module:
    from .transfer import TransferNet  # imports torchvision only when a transfer model is built

    return TransferNet(backbone, num_classes, **kwargs)


@register_model
def resnet18(*, num_classes: int = 7, **kwargs: Any) -> nn.Module:
    """torchvision ResNet-18, one-channel stem, crops upsampled to 96 (see models/transfer.py)."""
    return _transfer("resnet18", num_classes, kwargs)


@register_model
def resnet34(*, num_classes: int = 7, **kwargs: Any) -> nn.Module:
    """torchvision ResNet-34, one-channel stem, crops upsampled to 96."""
    return _transfer("resnet34", num_classes, kwargs)


@register_model
def mobilenet_v3_small(*, num_classes: int = 7, **kwargs: Any) -> nn.Module:
    """torchvision MobileNetV3-Small, one-channel stem, crops upsampled to 96."""
    return _transfer("mobilenet_v3_small", num_classes, kwargs)


@register_model
def mobilenet_v3_large(*, num_classes: int = 7, **kwargs: Any) -> nn.Module:
    """torchvision MobileNetV3-Large, one-channel stem, crops upsampled to 96."""
    return _transfer("mobilenet_v3_large", num_classes, kwargs)


@register_model
def efficientnet_b0(*, num_classes: int = 7, **kwargs: Any) -> nn.Module:
    """torchvision EfficientNet-B0, one-channel stem, crops upsampled to 96."""
    return _transfer("efficientnet_b0", num_classes, kwargs)


@register_model
def ensemble(*, num_classes: int = 7, members: list[dict[str, Any]] | None = None) -> ProbabilityEnsemble:
    """Probability average of trained members (see models/ensemble.py); ``members`` come from the metadata."""
    if not members:
        raise ValueError("ensemble needs members=[{'arch': ..., 'arch_kwargs': ..., 'temperature': ...}, ...]")
    return build_ensemble(num_classes=num_classes, members=members)
