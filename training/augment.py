"""Batched data augmentation on network-input tensors (N, 1, S, S), each sample with its own draw.

One ``affine_grid``/``grid_sample`` call applies per-sample rotation, scale, shift and horizontal
flip; then brightness/contrast jitter and random erasing. Works on CPU and GPU alike: the random
numbers come from the generator's own device (a CPU ``torch.Generator`` for training) and are moved to
the batch's device, so a CUDA batch gets the same draws as a CPU one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths; ``strength`` scales every geometric and photometric range at once."""

    rotation_deg: float = 12.0
    scale: float = 0.12
    shift: float = 0.10
    flip: bool = True
    brightness: float = 0.25
    contrast: float = 0.25
    erase_prob: float = 0.4
    erase_area: tuple[float, float] = (0.02, 0.2)
    strength: float = 1.0


def _rand(shape: int | tuple[int, ...], generator: torch.Generator | None, device: torch.device, *,
          normal: bool = False, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Uniform [0, 1) (or standard normal) numbers drawn on ``generator``'s device, returned on ``device``."""
    source = generator.device if generator is not None else device
    draw = torch.randn if normal else torch.rand
    size = (shape,) if isinstance(shape, int) else shape
    return draw(size, generator=generator, device=source, dtype=dtype).to(device)


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return _rand(n, generator, device) * (high - low) + low


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return an augmented copy of a normalized batch ``x`` (N, C, H, W)."""
    n, device, s = x.shape[0], x.device, cfg.strength
    angle = _uniform(n, -cfg.rotation_deg * s, cfg.rotation_deg * s, generator, device) * (math.pi / 180.0)
    zoom = 1.0 + _uniform(n, -cfg.scale * s, cfg.scale * s, generator, device)
    tx = _uniform(n, -cfg.shift * s, cfg.shift * s, generator, device) * 2.0
    ty = _uniform(n, -cfg.shift * s, cfg.shift * s, generator, device) * 2.0
    flip = torch.where(_rand(n, generator, device) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(n, device=device)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    contrast = 1.0 + _uniform(n, -cfg.contrast * s, cfg.contrast * s, generator, device)
    brightness = _uniform(n, -cfg.brightness * s, cfg.brightness * s, generator, device)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast.view(n, 1, 1, 1) + mean + brightness.view(n, 1, 1, 1)

    if cfg.erase_prob > 0:
        out = _random_erase(out, cfg, generator)
    return out


def _random_erase(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None) -> torch.Tensor:
    n, _, h, w = x.shape
    device = x.device
    area = _uniform(n, *cfg.erase_area, generator, device)
    aspect = torch.exp(_uniform(n, math.log(0.3), math.log(3.3), generator, device))
    eh = (torch.sqrt(area * aspect) * h).clamp(1, h)
    ew = (torch.sqrt(area / aspect) * w).clamp(1, w)
    y0 = _rand(n, generator, device) * (h - eh)
    x0 = _rand(n, generator, device) * (w - ew)
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    mask = (rows >= y0.view(n, 1, 1)) & (rows < (y0 + eh).view(n, 1, 1)) & (cols >= x0.view(n, 1, 1)) & (cols < (x0 + ew).view(n, 1, 1))
    active = _rand(n, generator, device) < cfg.erase_prob
    mask = (mask & active.view(n, 1, 1)).unsqueeze(1)
    noise = _rand(tuple(x.shape), generator, device, normal=True, dtype=x.dtype)
    return torch.where(mask, noise, x)
