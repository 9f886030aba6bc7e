"""ImageNet backbones from torchvision, adapted to one-channel 48x48 face crops.

Two adaptations, both inside the model so the ONNX graph takes the usual (N, 1, 48, 48) input:

* **Stem folded to one channel.** The RGB stem convolution becomes a one-channel convolution with a
  bias. With ImageNet weights the fold is exact on every pixel away from the zero padding: our input
  is ``x = (g - mean) / std`` (the model's :class:`PreprocessSpec`), ImageNet's channel ``c`` would see
  ``(g - m_c) / s_c = (std * x + mean - m_c) / s_c`` for a gray image ``g`` copied into R, G and B,
  so the folded weight is ``sum_c W_c * std / s_c`` and the bias ``sum_c sum_kernel W_c * (mean - m_c) / s_c``.
* **Upsampling, not stride surgery.** The crop is resized bilinearly to ``resize`` pixels (default 96)
  before the unchanged backbone. Every backbone here downsamples by 32, so 48 pixels would end at a
  2x2 map whose last stages see little spatial context; 96 ends at 3x3. Removing early strides
  instead would also work for random initialisation but changes the receptive fields the ImageNet
  filters were trained for; upsampling keeps them and costs ``(resize / 48) ** 2`` times the compute
  of the 48-pixel network, a knob recorded in ``arch_kwargs``.

Weights come from a local torchvision state dict (``torch.load(weights_only=True)``) or from
torchvision's own download (``"imagenet"``, needs internet); see :func:`load_imagenet_weights`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import DependencyError, ModelError
from .preprocess import PreprocessSpec

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
BACKBONES: tuple[str, ...] = ("resnet18", "resnet34", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0")


def _torchvision_model(name: str) -> nn.Module:
    """The torchvision ImageNet classifier ``name`` with random weights (1000 classes)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone '{name}'; choose one of {', '.join(BACKBONES)}")
    try:
        from torchvision import models
    except ImportError:
        raise DependencyError("transfer models need torchvision; install it with: pip install 'emolive[train]'") from None
    builder: Callable[..., nn.Module] = getattr(models, name)
    return builder(weights=None)


def fold_stem(conv: nn.Conv2d, spec: PreprocessSpec = PreprocessSpec()) -> nn.Conv2d:
    """A one-channel copy of an RGB stem convolution that sees our normalized gray input as ImageNet RGB."""
    if conv.in_channels != 3 or conv.groups != 1:
        raise ValueError(f"expected a 3-channel stem convolution, got {conv}")
    folded = nn.Conv2d(1, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,  # type: ignore[arg-type]
                       dilation=conv.dilation, bias=True)
    with torch.no_grad():
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        weight = conv.weight.float()
        folded.weight.copy_((weight * (spec.std / std)).sum(dim=1, keepdim=True))
        bias = (weight * ((spec.mean - mean) / std)).sum(dim=(1, 2, 3))
        if conv.bias is not None:
            bias += conv.bias.float()
        folded.bias.copy_(bias)
    return folded


def _feature_extractor(name: str, model: nn.Module) -> tuple[nn.Module, int]:
    """Strip the ImageNet classifier and fold the stem: a module (N, 1, S, S) -> (N, F), and F."""
    if name.startswith("resnet"):
        model.conv1 = fold_stem(model.conv1)
        features = model.fc.in_features
        model.fc = nn.Identity()
        return model, features
    stem = model.features[0][0]
    model.features[0][0] = fold_stem(stem)
    features = model.features[-1].out_channels
    return nn.Sequential(model.features, nn.AdaptiveAvgPool2d(1), nn.Flatten()), features


class TransferNet(nn.Module):
    """A torchvision backbone (stem folded to one channel) + dropout + linear head for face crops.

    ``forward_features`` returns the backbone's globally pooled vector (``num_features`` long: 512
    for ResNet-18/34, 576/960 for MobileNetV3 small/large, 1280 for EfficientNet-B0).
    """

    def __init__(self, backbone: str, num_classes: int = 7, *, resize: int = 96, dropout: float = 0.2) -> None:
        super().__init__()
        if isinstance(resize, bool) or not isinstance(resize, int) or not 32 <= resize <= 512:
            raise ValueError(f"resize must be a whole number of pixels in [32, 512], got {resize!r}")
        self.backbone_name = backbone
        self.resize = resize
        self.backbone, self.num_features = _feature_extractor(backbone, _torchvision_model(backbone))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.num_features, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.resize or x.shape[-2] != self.resize:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        return self.backbone(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A torchvision state dict from a local ``.pth`` file, loaded without unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"pretrained weights {path} do not exist; pass --pretrained with a torchvision .pth state dict, or 'imagenet'")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError/RuntimeError/... for foreign files
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelError(f"{path} is not a loadable PyTorch state dict ({reason}); pass a torchvision .pth file") from None
    for key in ("state_dict", "model"):  # training checkpoints wrap the weights
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} does not hold a state dict of tensors; pass a torchvision .pth state dict")
    return dict(state)


def imagenet_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """torchvision's default ImageNet weights for ``backbone`` (downloads them: needs internet once)."""
    from torchvision.models import get_model_weights

    weights = get_model_weights(backbone).DEFAULT
    try:  # a download is checked against the hash in its name; a cached file (anyone may have put it there) loads without unpickling code
        return weights.get_state_dict(progress=True, weights_only=True, check_hash=True)
    except OSError as exc:
        raise ModelError(f"cannot download ImageNet weights for {backbone} ({exc}); download {weights.url} elsewhere and pass --pretrained FILE") from None
    except Exception as exc:  # a damaged or foreign file in the cache: refused by the hash check or by weights_only
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelError(f"the cached ImageNet weights for {backbone} are unusable ({reason}); delete the file in torch's hub "
                         f"cache ($TORCH_HOME/hub/checkpoints) or pass --pretrained FILE") from None


def load_imagenet_weights(model: nn.Module, source: str | os.PathLike[str]) -> nn.Module:
    """Load ImageNet weights into a :class:`TransferNet`'s backbone (the head stays random).

    ``source`` is ``"imagenet"`` (torchvision downloads them) or a path to a torchvision state dict of
    the same architecture. The RGB stem is folded to one channel as described in this module's docstring.
    """
    if not isinstance(model, TransferNet):
        raise ModelError(f"--pretrained needs a transfer model ({', '.join(BACKBONES)}), not {type(model).__name__}")
    name = model.backbone_name
    state = imagenet_state_dict(name) if str(source) == "imagenet" else read_state_dict(source)
    donor = _torchvision_model(name)
    try:
        donor.load_state_dict(state)
    except (RuntimeError, AttributeError, TypeError) as exc:  # missing/unexpected keys, wrong shapes, keys that are not names
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip() and not line.strip().endswith(":")]
        reason = (lines or [type(exc).__name__])[0][:200]
        raise ModelError(f"{source} is not a torchvision {name} state dict ({reason}); pass weights of the same architecture") from None
    extractor, _ = _feature_extractor(name, donor)
    model.backbone.load_state_dict(extractor.state_dict())  # copies into the existing tensors, on their device
    return model
