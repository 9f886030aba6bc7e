"""Batch mixing (mixup, CutMix) with soft targets, and class-balanced sampling orders.

Mixing draws one ratio per batch from Beta(alpha, alpha) and pairs every sample with another of the
same batch (a random permutation). Mixup blends whole images (Zhang et al. 2018); CutMix pastes a
rectangle of the partner image whose area is ``1 - lam`` of the crop (Yun et al. 2019), and the ratio
is recomputed from the clipped rectangle. Targets are mixed with the same ratio, so the loss is the
cross-entropy against a probability vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

SAMPLERS: tuple[str, ...] = ("shuffle", "balanced", "sqrt")


@dataclass(frozen=True)
class MixConfig:
    """``mixup_alpha``/``cutmix_alpha`` > 0 enable each; ``prob`` is the chance a batch is mixed at all,
    ``switch_prob`` the chance of CutMix rather than mixup when both are enabled."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0
    switch_prob: float = 0.5

    def __post_init__(self) -> None:
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError(f"mixup/cutmix alpha must be >= 0, got {self.mixup_alpha}, {self.cutmix_alpha}")
        if not (0.0 <= self.prob <= 1.0 and 0.0 <= self.switch_prob <= 1.0):
            raise ValueError(f"mix probabilities must be in [0, 1], got {self.prob}, {self.switch_prob}")

    @property
    def enabled(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)


def soft_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class ids (N,) as one-hot float (N, C); probability rows (N, C) pass through as float."""
    if labels.ndim == 2:
        return labels.float()
    return F.one_hot(labels, num_classes).float()


def _beta(alpha: float, generator: torch.Generator) -> float:
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mix_batch(x: torch.Tensor, targets: torch.Tensor, cfg: MixConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Mix a batch (N, C, H, W) and its probability targets (N, K); returns (images, targets, "mixup"|"cutmix"|"none")."""
    if not cfg.enabled or len(x) < 2 or float(torch.rand(1, generator=generator)) >= cfg.prob:
        return x, targets, "none"
    use_cutmix = cfg.cutmix_alpha > 0 and (cfg.mixup_alpha <= 0 or float(torch.rand(1, generator=generator)) < cfg.switch_prob)
    lam = _beta(cfg.cutmix_alpha if use_cutmix else cfg.mixup_alpha, generator)
    partner = torch.randperm(len(x), generator=generator).to(x.device)
    if use_cutmix:
        h, w = x.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(round(h * cut)), int(round(w * cut))
        cy, cx = int(torch.randint(0, h, (1,), generator=generator)), int(torch.randint(0, w, (1,), generator=generator))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
        mixed = x.clone()
        mixed[..., y0:y1, x0:x1] = x[partner][..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
    else:
        mixed = lam * x + (1.0 - lam) * x[partner]
    return mixed, lam * targets + (1.0 - lam) * targets[partner], "cutmix" if use_cutmix else "mixup"


def epoch_order(labels: torch.Tensor, sampler: str, generator: torch.Generator) -> torch.Tensor:
    """Indices for one epoch: a permutation (``shuffle``), or ``len(labels)`` draws with replacement where a
    sample's chance is proportional to 1/count of its class (``balanced``) or 1/sqrt(count) (``sqrt``).
    Probability-row labels (N, C) count by their argmax."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler '{sampler}'; choose one of {', '.join(SAMPLERS)}")
    if sampler == "shuffle":
        return torch.randperm(len(labels), generator=generator)
    hard = labels.argmax(1) if labels.ndim == 2 else labels
    counts = torch.bincount(hard).double().clamp(min=1)
    per_class = 1.0 / counts if sampler == "balanced" else counts.rsqrt()
    return torch.multinomial(per_class[hard], len(hard), replacement=True, generator=generator)
