"""Training-recipe options of ``emo-live train`` beyond the basics: label sets (FER2013, FER+ majority,
FER+ votes), architecture kwargs, ImageNet initialisation, backbone freezing / learning-rate scale,
mixup/CutMix, sampling, and mixed precision (bf16 on CPUs with native bf16 kernels, fp16 with a gradient
scaler on CUDA)."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from emolive.models.errors import DataError, InputError
from emolive.models.labels import EMOTIONS, FERPLUS_EMOTIONS
from emolive.training.data import FerSplit
from emolive.training.ferplus import FERPLUS_FILE, LABEL_MODES, ferplus_targets, find_beside, read_ferplus, rows_of
from emolive.training.mix import SAMPLERS, MixConfig

PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp16", "fp32")


def add_recipe_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("recipe")
    group.add_argument("--labels", choices=LABEL_MODES, default="fer2013",
                       help="targets: FER2013's 7 labels, FER+ 8-class majority labels, or FER+ vote distributions (soft targets)")
    group.add_argument("--ferplus", default=None, help=f"FER+ {FERPLUS_FILE} (default: found beside --data)")
    group.add_argument("--arch-kwargs", default="{}", help='JSON keyword arguments of the architecture, e.g. \'{"resize": 128}\' (recorded in the model)')
    group.add_argument("--pretrained", default=None,
                       help="transfer models: a local torchvision ImageNet state dict (.pth), or 'imagenet' to let torchvision download it")
    group.add_argument("--init", default=None, metavar="MODEL",
                       help="start from a trained model of the same architecture (shipped name, run folder or .safetensors): "
                            "fine-tuning, e.g. a FER2013 model into FER+; classifier rows are matched by label name")
    group.add_argument("--freeze-backbone", action="store_true", help="train only the head (backbone weights and BN statistics fixed)")
    group.add_argument("--backbone-lr-scale", type=float, default=1.0, help="learning rate of everything but the head, as a fraction of --lr")
    group.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA", help="mixup Beta(alpha, alpha); 0 disables (try 0.2)")
    group.add_argument("--cutmix", type=float, default=0.0, metavar="ALPHA", help="CutMix Beta(alpha, alpha); 0 disables (try 1.0)")
    group.add_argument("--mix-prob", type=float, default=1.0, help="chance a batch is mixed when --mixup/--cutmix are on")
    group.add_argument("--mix-switch-prob", type=float, default=0.5, help="chance of CutMix instead of mixup when both are on")
    group.add_argument("--sampler", choices=SAMPLERS, default="shuffle",
                       help="shuffle: each image once per epoch; balanced / sqrt: draw classes equally / by 1/sqrt(count)")


def check_imbalance_handling(args: argparse.Namespace) -> None:
    """Refuse ``--sampler balanced|sqrt`` with ``--class-weights``: together they correct class imbalance twice."""
    sampler, weights = getattr(args, "sampler", "shuffle"), getattr(args, "class_weights", "none")
    if sampler != "shuffle" and weights != "none":
        raise InputError(f"--sampler {sampler} and --class-weights {weights} both correct class imbalance, so rare classes "
                         "would be over-weighted twice; use one of them")


def label_names(args: argparse.Namespace) -> tuple[str, ...]:
    return EMOTIONS if getattr(args, "labels", "fer2013") == "fer2013" else FERPLUS_EMOTIONS


def arch_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    try:
        kwargs = json.loads(getattr(args, "arch_kwargs", "{}") or "{}")
    except json.JSONDecodeError as exc:
        raise InputError(f"--arch-kwargs is not valid JSON ({exc}); pass an object such as '{{\"resize\": 128}}'") from None
    if not isinstance(kwargs, dict):
        raise InputError("--arch-kwargs must be a JSON object such as '{\"resize\": 128}'")
    return kwargs


def mix_config(args: argparse.Namespace) -> MixConfig:
    try:
        return MixConfig(args.mixup, args.cutmix, args.mix_prob, args.mix_switch_prob)
    except ValueError as exc:
        raise InputError(f"{exc}; fix --mixup/--cutmix/--mix-prob/--mix-switch-prob") from None


def select_labels(split: FerSplit, args: argparse.Namespace, *, evaluation: bool = False) -> tuple[FerSplit, np.ndarray | None]:
    """The split under ``--labels``: FER2013 as is, or FER+ rows with their majority label (and, for
    ``ferplus-votes`` training, the vote distributions). Evaluation always uses FER+ majority labels."""
    mode = getattr(args, "labels", "fer2013")
    if mode == "fer2013":
        return split, None
    mode = "ferplus-majority" if evaluation else mode
    path = Path(args.ferplus) if args.ferplus else find_beside(args.data, FERPLUS_FILE)
    if path is None:
        raise DataError(f"--labels {mode} needs FER+ votes ({FERPLUS_FILE}) beside --data; pass --ferplus PATH")
    targets = ferplus_targets(split.keys, split.name, read_ferplus(path), rows_of(split.keys, args.data), mode)
    keep = targets.keep
    kept = FerSplit(split.name, split.images[keep], targets.labels[keep], split.keys[keep])
    return kept, (targets.distributions[keep] if mode == "ferplus-votes" else None)


def is_head(name: str) -> bool:
    return name == "head" or name.startswith("head.")


def freeze_backbone(model: nn.Module) -> None:
    """Fix every parameter outside ``model.head``; :func:`set_train_mode` keeps their BN statistics fixed too."""
    for name, param in model.named_parameters():
        if not is_head(name):
            param.requires_grad_(False)


def set_train_mode(model: nn.Module, frozen_backbone: bool) -> None:
    """Training mode, with a frozen backbone's BatchNorm statistics kept fixed (eval mode)."""
    model.train()
    if frozen_backbone:
        network = getattr(model, "module", model)  # the network inside a DistributedDataParallel wrapper
        for name, module in network.named_children():
            if not is_head(name):
                module.eval()


def param_groups(model: nn.Module, args: argparse.Namespace) -> list[dict[str, Any]]:
    """AdamW/SGD groups: weight decay on matrices/kernels only; the backbone at ``--backbone-lr-scale`` of the lr."""
    scale = getattr(args, "backbone_lr_scale", 1.0)
    if scale < 0:
        raise InputError(f"--backbone-lr-scale must be >= 0, got {scale}")
    buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            buckets.setdefault((is_head(name) or scale == 1.0, param.ndim > 1), []).append(param)
    groups = []
    for (head, decay), params in sorted(buckets.items(), key=lambda kv: (not kv[0][0], not kv[0][1])):
        groups.append({"params": params, "weight_decay": args.weight_decay if decay else 0.0, "lr": args.lr * (1.0 if head else scale)})
    return groups


@functools.cache  # the answer cannot change within a process
def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels on this CPU (AVX-512 or Arm bf16). Elsewhere (e.g. AVX2-only
    CPUs) bf16 autocast falls back to slow reference kernels: about 12x slower than fp32 on an AVX2 AMD EPYC."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def resolve_precision(device: torch.device, precision: str) -> str:
    """``auto`` -> fp16 on CUDA, bf16 on a CPU with native bf16 kernels, fp32 on other CPUs; fp16 anywhere
    but CUDA is refused."""
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise InputError("--precision fp16 needs a CUDA GPU; use bf16 (or auto) on CPU")
    return precision


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 autocast (CUDA); None where none is needed."""
    return torch.amp.GradScaler("cuda") if resolve_precision(device, precision) == "fp16" else None


def warmup_ema(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """``multi_avg_fn`` for ``torch.optim.swa_utils.AveragedModel``: an EMA whose decay ramps up as
    ``min(decay, (1 + n) / (10 + n))`` over the first updates (n = updates so far).

    With a fixed decay of 0.998 the average remembers the random start for about a thousand steps; in a
    short run, and above all for BatchNorm statistics that shrink fast early on (MobileNetV3's depthwise
    layers), the averaged weights and averaged statistics then disagree and the EMA model predicts one
    class. The ramp lets the average follow the model closely at first; the decay reaches ``decay``
    after about 9 / (1 - decay) updates (4,500 at 0.998: 20 epochs of FER2013 at batch 128).
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay}")

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = int(num_averaged)
        step_decay = min(decay, (1.0 + n) / (10.0 + n))
        for target, source in zip(averaged, current, strict=True):
            if torch.is_floating_point(target):
                target.lerp_(source, 1.0 - step_decay)
            else:  # integer buffers (BatchNorm's num_batches_tracked): keep the model's count
                target.copy_(source)

    return update
