"""Train a FER2013 emotion classifier: ``emo-live train`` / ``python -m emolive.training.train``.

Shape follows torchvision's reference script: :func:`get_args_parser` -> :func:`main` ->
:func:`train_one_epoch` / :func:`evaluate`. Every epoch writes ``last.pt`` (model, optimizer,
scheduler, EMA, epoch, args, history, the random number generators' states; loaded back with
``weights_only=True``) so ``--resume`` continues a stopped run exactly where it was: same dropout masks
and augmentation draws as an uninterrupted run, same early-stopping count. A resumed run must keep the
settings that shape its schedule and weights (:data:`RESUME_FIXED`); the best PublicTest model is kept as
``best.safetensors`` and exported to
``best.onnx`` with its metadata at the end. PrivateTest is not touched here: evaluate the final model
once with ``emo-live eval``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from emolive.models.checkpoint import save_weights
from emolive.models.errors import EmoliveError, InputError, ModelError, OutputError
from emolive.models.info import ModelInfo
from emolive.models.onnx_io import export_onnx
from emolive.models.preprocess import PreprocessSpec, preprocess_faces
from emolive.models.registry import create_model, list_models
from emolive.training.augment import AugmentConfig, augment_batch
from emolive.training import distributed
from emolive.training.data import FerSplit, find_source, load_fer2013
from emolive.training.distill import TEACHER_MODES, OnlineTeacher, blend_targets, check_temperature, check_weight, teacher_probabilities
from emolive.training import recipe
from emolive.training.mix import epoch_order, mix_batch, soft_targets

PROG = "python -m emolive.training.train"
RESUME_FIXED: tuple[str, ...] = ("model", "labels", "epochs", "batch_size", "schedule", "limit")
"""Options a ``--resume`` must repeat: they decide the network, its outputs and the learning-rate schedule in ``last.pt``."""


def get_args_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="FER2013: fer2013.csv(.gz), the image tarball, or a folder with train/ and test/")
    parser.add_argument("--model", default="baseline_cnn", help=f"registered architecture ({', '.join(list_models())})")
    parser.add_argument("--output", "-o", default="runs/train", help="run folder: checkpoints, history, exported model")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    parser.add_argument("--schedule", choices=("onecycle", "cosine", "exponential"), default="onecycle")
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--class-weights", choices=("none", "sqrt", "inverse"), default="none",
                        help="weight the loss against class imbalance (disgust has 436 training images)")
    parser.add_argument("--augment-strength", type=float, default=1.0, help="scale of every augmentation range; 0 disables")
    parser.add_argument("--ema-decay", type=float, default=0.998, help="EMA of weights evaluated and kept; 0 disables")
    parser.add_argument("--patience", type=int, default=0, help="stop after this many epochs without PublicTest gain; 0 = never")
    parser.add_argument("--precision", choices=recipe.PRECISIONS, default="auto",
                        help="autocast dtype: auto = bf16 on a CPU with native bf16 kernels (AVX-512, Arm bf16; ~2x faster than fp32 there), "
                             "fp32 on other CPUs (AVX2: bf16 is ~12x slower), fp16 with gradient scaling on CUDA")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = all cores")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="use only this many training images (smoke tests)")
    parser.add_argument("--exclude", default=None,
                        help="suspects CSV from 'emo-live audit --suspects': leave its Training rows out (duplicates of test images, conflicting labels, blank)")
    parser.add_argument("--teacher", default=None,
                        help="distil from this model (shipped name or .onnx, e.g. an ensemble): train on labels blended with its probabilities")
    parser.add_argument("--teacher-weight", type=float, default=0.7, help="share of the teacher's probabilities in the targets (default: %(default)s)")
    parser.add_argument("--teacher-temperature", type=float, default=1.0, help="softmax temperature of the teacher's logits (default: %(default)s)")
    parser.add_argument("--teacher-mode", choices=TEACHER_MODES, default="offline",
                        help="offline: the teacher labels the clean Training images once (cached); online: it labels every augmented "
                             "batch as the student sees it (consistent targets, one teacher pass per image per epoch) (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT/last.pt")
    parser.add_argument("--no-export", action="store_true", help="skip the ONNX export at the end")
    distributed.add_distributed_args(parser)
    recipe.add_recipe_args(parser)
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Refuse an unknown ``--model`` and out-of-range numbers with a one-line InputError, before any data loads."""
    if args.model not in list_models():
        raise InputError(f"unknown --model '{args.model}'; choose one of: {', '.join(list_models())}")
    if args.epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not 0.0 <= args.ema_decay < 1.0:
        raise InputError(f"--ema-decay must be in [0, 1) (0 disables the EMA), got {args.ema_decay}")
    if not 0.0 <= args.label_smoothing < 1.0:
        raise InputError(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
    if args.patience < 0:
        raise InputError(f"--patience must be >= 0 (0 never stops early), got {args.patience}")
    if args.limit < 0:
        raise InputError(f"--limit must be >= 0 (0 uses every training image), got {args.limit}")
    check_weight(getattr(args, "teacher_weight", 0.7))
    check_temperature(getattr(args, "teacher_temperature", 1.0))
    if getattr(args, "teacher_mode", "offline") == "online" and not getattr(args, "teacher", None):
        raise InputError("--teacher-mode online needs a teacher; add --teacher MODEL")


def check_inputs(args: argparse.Namespace) -> None:
    """Every check that needs neither the data nor a network: the options (:func:`check_args` and their combinations) and
    the files --exclude, --teacher and --init name, so a bad one fails in one line before training (or a search's first trial) starts."""
    check_args(args)
    if getattr(args, "init", None) and getattr(args, "pretrained", None):
        raise InputError("--init and --pretrained both set the starting weights; pass one of them")
    if getattr(args, "init", None):
        from emolive.training.init_weights import init_weights_path

        init_weights_path(args.init)
    recipe.check_imbalance_handling(args)
    recipe.arch_kwargs(args)
    recipe.mix_config(args)
    if args.exclude is not None:
        from emolive.training.suspects import read_excluded_keys

        read_excluded_keys(args.exclude)
    if getattr(args, "teacher", None):
        from emolive.models.shipped import resolve_model_path

        resolve_model_path(args.teacher)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def rng_states(device: torch.device) -> dict[str, Any]:
    """The global random number generators' states (torch CPU, CUDA when used, numpy, Python), storable with ``weights_only``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                              "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_states` saved (a CUDA state only on CUDA, for the devices present)."""
    torch.set_rng_state(states["torch"].cpu())
    random.setstate(_as_tuples(states["python"]))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if device.type == "cuda" and states.get("cuda") is not None:
        for index, state in enumerate(states["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state.cpu(), index)


def _as_tuples(value: Any) -> Any:
    """Lists back to tuples, as ``random.setstate`` needs them."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def epochs_since_best(history: list[dict[str, Any]]) -> int:
    """Epochs after the first one with the best PublicTest accuracy: what ``--patience`` counts."""
    accuracies = [record["val_accuracy"] for record in history]
    return len(accuracies) - 1 - accuracies.index(max(accuracies)) if accuracies else 0


def read_checkpoint(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``last.pt`` for ``--resume``, after checking it is one and that ``args`` repeat its :data:`RESUME_FIXED` options."""
    fix = "delete it or start without --resume"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refusals (UnpicklingError), truncated zips, I/O errors: all mean 'not usable'
        raise ModelError(f"{path} is not a readable training checkpoint ({type(exc).__name__}); {fix}") from None
    needed = {"model", "optimizer", "lr_scheduler", "generator", "epoch", "best_accuracy", "history", "wall_seconds", "args"}
    if not isinstance(state, dict) or not needed <= set(state):
        raise ModelError(f"{path} is not an emolive training checkpoint (it lacks model, optimizer or history); {fix}")
    try:
        stored, _ = json.loads(state["args"]), json.loads(state["history"])
    except (TypeError, json.JSONDecodeError):
        raise ModelError(f"{path} has unreadable training options or history; {fix}") from None
    for name in RESUME_FIXED:
        if name in stored and stored[name] != getattr(args, name):
            flag = "--" + name.replace("_", "-")
            raise InputError(f"{path} was trained with {flag} {stored[name]}, not {getattr(args, name)}; resume with "
                             f"{flag} {stored[name]}, or train from scratch in another --output folder")
    return state


def restore_checkpoint(state: dict[str, Any], path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                       ema: AveragedModel | None, generator: torch.Generator, scaler: torch.amp.GradScaler | None) -> None:
    """Load ``last.pt``'s model, optimizer, schedule, EMA, augmentation generator and gradient scaler; ModelError if they do not fit."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["lr_scheduler"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        generator.set_state(state["generator"].cpu())
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path} does not fit this run ({reason}); delete it or start without --resume") from None


def build_model(args: argparse.Namespace, labels: tuple[str, ...], arch_kwargs: dict[str, Any], *, resuming: bool = False,
                announce: bool = True) -> nn.Module:
    """The registered architecture with ``arch_kwargs``, ImageNet or ``--init`` weights (not when ``resuming``: the checkpoint
    replaces them) and a frozen backbone as asked; ``announce`` prints what ``--init`` loaded."""
    try:
        model = create_model(args.model, num_classes=len(labels), **arch_kwargs)
    except (TypeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"--arch-kwargs {args.arch_kwargs} does not fit --model {args.model} ({reason}); pass only that architecture's options") from None
    if args.pretrained:
        from emolive.models.transfer import load_imagenet_weights

        load_imagenet_weights(model, args.pretrained)
    if getattr(args, "init", None) and not resuming:
        from emolive.training.init_weights import init_from

        report = init_from(model, args.model, labels, args.init)
        if announce:
            print(report.describe())
    if args.freeze_backbone:
        recipe.freeze_backbone(model)
    return model


def to_tensor(split: FerSplit, spec: PreprocessSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocess a whole split through the shared preprocessing function."""
    batch = np.concatenate([preprocess_faces(image, None, spec) for image in split.images]) if len(split) else np.empty((0, 1, spec.size, spec.size), np.float32)
    return torch.from_numpy(batch), torch.from_numpy(split.labels)


def class_weights(labels: torch.Tensor, mode: str, num_classes: int) -> torch.Tensor | None:
    if mode == "none":
        return None
    labels = labels.argmax(1) if labels.ndim == 2 else labels  # probability targets count by their top class
    counts = torch.bincount(labels, minlength=num_classes).float().clamp(min=1)
    weights = (counts.sum() / counts) if mode == "inverse" else (counts.sum() / counts).sqrt()
    return weights / weights.mean()


def autocast(device: torch.device, precision: str):
    """Autocast for a resolved ``precision`` (bf16, fp16 or fp32: see :func:`recipe.resolve_precision`)."""
    if precision not in ("bf16", "fp16", "fp32"):  # "auto" here would silently train in fp32
        raise ValueError(f"autocast needs a resolved precision (bf16, fp16 or fp32), not {precision!r}; pass it through recipe.resolve_precision")
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=precision in ("bf16", "fp16"))


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, images: torch.Tensor,
                    labels: torch.Tensor, args: argparse.Namespace, epoch: int, generator: torch.Generator,
                    ema: AveragedModel | None, loss_weights: torch.Tensor | None, device: torch.device,
                    dist: distributed.DistContext = distributed.SINGLE, scaler: torch.amp.GradScaler | None = None,
                    precision: str = "fp32", teacher: OnlineTeacher | None = None) -> dict[str, float]:
    """One pass over the training set; ``labels`` are class ids (N,) or probability targets (N, C); ``precision``
    is resolved (bf16, fp16 or fp32). An online ``teacher`` labels each batch after augmentation and mixing, and
    its probabilities are blended into the targets with ``args.teacher_weight``."""
    recipe.set_train_mode(model, getattr(args, "freeze_backbone", False))
    order = epoch_order(labels, getattr(args, "sampler", "shuffle"), generator)
    # under torchrun: this rank's shard of the permutation, its own augmentation stream, its share of the global batch
    order, generator, batch_size = distributed.shard_order(order, dist), distributed.rank_generator(generator, dist), distributed.local_batch_size(args.batch_size, dist)
    cfg = AugmentConfig(strength=args.augment_strength)
    mix = recipe.mix_config(args)
    if mix.enabled and labels.ndim != 2:
        raise ValueError("mixing needs probability targets (N, C); convert class ids with soft_targets first")
    total_loss, correct, seen = 0.0, 0, 0
    steps = math.ceil(len(order) / batch_size)
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch", leave=False, dynamic_ncols=True, disable=not dist.is_main)
    for step in bar:
        index = order[step * batch_size:(step + 1) * batch_size]
        x, y = images[index].to(device), labels[index].to(device)
        if args.augment_strength > 0:
            x = augment_batch(x, cfg, generator)
        targets = y
        if mix.enabled:
            x, targets, _ = mix_batch(x, soft_targets(y, labels.shape[1]), mix, generator)
        if teacher is not None:
            targets = blend_targets(targets, teacher.probabilities(x), args.teacher_weight)
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), targets, weight=loss_weights, label_smoothing=args.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        step_lr = optimizer.param_groups[0]["lr"]  # the rate this step uses (one-cycle moves it after the step)
        if scaler is not None:  # fp16: scale the loss so small gradients do not underflow
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        y = y.argmax(1) if y.ndim == 2 else y
        if args.schedule == "onecycle":
            scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}", lr=f"{step_lr:.2e}")
    if args.schedule != "onecycle":
        scheduler.step()
    return {"train_loss": total_loss / max(seen, 1), "train_accuracy": correct / max(seen, 1)}


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
             precision: str = "fp32", batch_size: int = 512) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on a preprocessed split."""
    model.eval()
    correct, total_loss = 0, 0.0
    for start in range(0, len(labels), batch_size):
        x = images[start:start + batch_size].to(device).contiguous(memory_format=torch.channels_last)
        y = labels[start:start + batch_size].to(device)
        with autocast(device, precision):
            logits = model(x).float()
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    n = max(len(labels), 1)
    return {"accuracy": correct / n, "loss": total_loss / n}


def build_scheduler(optimizer: torch.optim.Optimizer, args: argparse.Namespace, steps_per_epoch: int):
    if args.schedule == "onecycle":
        max_lr = [group["lr"] for group in optimizer.param_groups]  # per group: the backbone may run at a lower rate
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch,
                                                   pct_start=0.15, div_factor=20.0, final_div_factor=200.0)
    if args.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs, eta_min=args.lr * 1e-3)
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=(1e-2) ** (1.0 / max(args.epochs, 1)))


def main(args: argparse.Namespace, on_epoch_end: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """Run training; returns the summary written to OUTPUT/summary.json.

    ``on_epoch_end(record)`` (e.g. a hyperparameter search's pruner) sees each epoch's history record
    after it is saved; returning True stops training there. Under torchrun (an initialised process
    group, see :mod:`emolive.training.distributed`) every rank runs this and only rank 0 writes files.
    """
    check_inputs(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = seed_everything(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dist = distributed.current()
    out = Path(args.output)
    last = out / "last.pt"
    resumed = read_checkpoint(last, args) if args.resume and last.is_file() else None
    spec = PreprocessSpec()  # FER2013 images are whole face crops; the detector-box margin is set at release
    labels = recipe.label_names(args)
    arch_kwargs = recipe.arch_kwargs(args)
    find_source(Path(args.data))  # a wrong data path is reported before any model is built
    model = build_model(args, labels, arch_kwargs, resuming=resumed is not None, announce=dist.is_main)  # loading the data draws no torch random numbers: same initial weights as after it
    try:  # created once the model (and any --pretrained file) is known to be good: a bad one leaves no empty run folder
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create run folder {out} ({exc.strerror}); choose another --output") from None

    train_split = load_fer2013(args.data, "Training")
    val_split = load_fer2013(args.data, "PublicTest")
    if args.exclude is not None:
        from emolive.training.suspects import exclude_keys, read_excluded_keys

        before = len(train_split)
        train_split = exclude_keys(train_split, read_excluded_keys(args.exclude))
        print(f"excluded {before - len(train_split)} Training images listed in {args.exclude}", flush=True)
    if args.limit:
        keep = np.sort(np.random.default_rng(args.seed).permutation(len(train_split))[:args.limit])
        train_split = FerSplit(train_split.name, train_split.images[keep], train_split.labels[keep], train_split.keys[keep])
    train_split, train_votes = recipe.select_labels(train_split, args)
    val_split, _ = recipe.select_labels(val_split, args, evaluation=True)
    train_x, train_y = to_tensor(train_split, spec)
    val_x, val_y = to_tensor(val_split, spec)
    if train_votes is not None:
        train_y = torch.from_numpy(train_votes)
    elif recipe.mix_config(args).enabled:
        train_y = soft_targets(train_y, len(labels))
    online = getattr(args, "teacher_mode", "offline") == "online"  # check_args refused online mode without a teacher
    if getattr(args, "teacher", None) and not online:
        probs = teacher_probabilities(args.teacher, train_split, labels, args.teacher_temperature, out, progress=dist.is_main)
        train_y = blend_targets(train_y, probs, args.teacher_weight)
    precision = recipe.resolve_precision(device, args.precision)
    scaler = recipe.grad_scaler(device, precision)
    if dist.is_main:
        slow_bf16 = precision == "bf16" and device.type == "cpu" and not recipe.cpu_has_fast_bf16()
        print(f"precision {precision} on {device.type}" + ("; this CPU has no native bf16 kernels, so --precision fp32 (or auto) trains"
                                                           " far faster here" if slow_bf16 else ""), flush=True)

    model = model.to(device).to(memory_format=torch.channels_last)
    groups = recipe.param_groups(model, args)
    if args.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=args.lr)
    else:
        optimizer = torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True)
    steps_per_epoch = math.ceil(len(train_y) / args.batch_size)
    scheduler = build_scheduler(optimizer, args, steps_per_epoch)
    ema = AveragedModel(model, multi_avg_fn=recipe.warmup_ema(args.ema_decay), use_buffers=True) if args.ema_decay > 0 else None
    loss_weights = class_weights(train_y, args.class_weights, len(labels))
    train_model = distributed.wrap_model(model, dist, sync_batchnorm=args.sync_batchnorm)  # shares model's parameters

    start_epoch, best_acc, history, wall = 0, -1.0, [], 0.0
    if resumed is not None:
        restore_checkpoint(resumed, last, model, optimizer, scheduler, ema, generator, scaler)
        if resumed.get("rng") is not None:  # older last.pt files lack them: dropout then restarts from --seed
            set_rng_states(resumed["rng"], device)
        start_epoch, best_acc, history, wall = resumed["epoch"] + 1, resumed["best_accuracy"], json.loads(resumed["history"]), resumed["wall_seconds"]
        print(f"resumed from {last} at epoch {start_epoch}")

    label_source = {"fer2013": "FER2013", "ferplus-majority": "FER+ majority labels of FER2013", "ferplus-votes": "FER+ vote distributions of FER2013"}[args.labels]
    info_kwargs = {"arch": args.model, "labels": labels, "preprocess": spec, "arch_kwargs": arch_kwargs,
                   "training_data": f"{label_source} Training ({len(train_y)} images)" + (f", ImageNet-initialised ({Path(args.pretrained).name})" if args.pretrained else "")
                   + (f", initialised from {Path(args.init).name}" if getattr(args, "init", None) else "")
                   + (f", distilled from {Path(args.teacher).name} (weight {args.teacher_weight}, T {args.teacher_temperature}"
                      + (", online)" if online else ")") if getattr(args, "teacher", None) else "")}
    stale = epochs_since_best(history)
    epochs = range(start_epoch, args.epochs)
    if args.patience and stale >= args.patience and len(epochs):
        print(f"early stop: {last} was saved after {stale} epochs without PublicTest gain (--patience {args.patience}); not training on")
        epochs = range(0)
    online_teacher = (OnlineTeacher(args.teacher, labels, spec, args.teacher_temperature, threads=torch.get_num_threads(), gpu=device.type == "cuda")
                      if online else None)
    with online_teacher or contextlib.nullcontext():
        for epoch in epochs:
            tic = time.perf_counter()
            record = {"epoch": epoch + 1, **distributed.mean_over_ranks(train_one_epoch(train_model, optimizer, scheduler, train_x, train_y, args, epoch, generator, ema, loss_weights, device, dist, scaler, precision, online_teacher), dist)}
            distributed.average_buffers((model, ema), dist)  # BatchNorm statistics differ per rank after the last step
            evaluated = ema.module if ema is not None else model
            record.update({f"val_{k}": v for k, v in distributed.evaluate_sharded(evaluate, evaluated, val_x, val_y, dist, device).items()})
            wall += time.perf_counter() - tic
            record["wall_seconds"] = round(wall, 1)
            history.append(record)
            improved = record["val_accuracy"] > best_acc
            if improved:
                best_acc, stale = record["val_accuracy"], 0
                info = ModelInfo(**info_kwargs, metrics={"public_test_accuracy": round(best_acc, 4), "epoch": epoch + 1})
            else:
                stale += 1

            def write_epoch() -> None:  # rank 0 only
                if improved:
                    save_weights(evaluated, info, out / "best.safetensors")
                part = out / "last.pt.part"
                try:
                    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "lr_scheduler": scheduler.state_dict(),
                                "ema": ema.state_dict() if ema is not None else None, "generator": generator.get_state(), "rng": rng_states(device),
                                "epoch": epoch, "scaler": scaler.state_dict() if scaler is not None else None,
                                "best_accuracy": best_acc, "history": json.dumps(history), "wall_seconds": wall, "args": json.dumps(vars(args))},
                               part)
                    os.replace(part, last)
                except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as a RuntimeError
                    if part.is_file():  # no half-written checkpoint left behind (last.pt is still the previous epoch's)
                        part.unlink()
                    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "the write failed; the disk may be full"
                    raise OutputError(f"cannot write {last} ({reason}); free disk space or choose another --output") from None
                (out / "history.json").write_text(json.dumps(history, indent=1))

            distributed.on_main(write_epoch, dist, f"the checkpoint of epoch {epoch + 1} into {out}")
            print(f"epoch {epoch + 1}/{args.epochs} loss {record['train_loss']:.4f} train {record['train_accuracy']:.4f} "
                  f"PublicTest {record['val_accuracy']:.4f}{' *' if improved else ''} ({wall / 60:.1f} min)", flush=True)
            if args.patience and stale >= args.patience:
                print(f"early stop: no PublicTest gain for {args.patience} epochs")
                break
            if on_epoch_end is not None and on_epoch_end(record):
                print(f"stopped after epoch {epoch + 1} by on_epoch_end")
                break

    summary = {"best_public_test_accuracy": best_acc, "epochs_run": len(history), "wall_seconds": round(wall, 1),
               "args": vars(args), "torch": torch.__version__, "device": str(device), "precision": precision, "threads": torch.get_num_threads()}
    if dist.enabled:  # DDP keeps replicas bit-identical; the fingerprints let anyone check against last.pt
        summary.update(world_size=dist.world_size, replica_fingerprints=distributed.replica_fingerprints(model, dist))

    def write_summary() -> None:
        if not args.no_export and (out / "best.safetensors").is_file():
            from emolive.models.checkpoint import load_model

            best_model, best_info = load_model(out / "best.safetensors")
            export_onnx(best_model, best_info, out / "best.onnx")
            summary["onnx"] = str(out / "best.onnx")
        (out / "summary.json").write_text(json.dumps(summary, indent=1))

    distributed.on_main(write_summary, dist, f"best.onnx and summary.json into {out}")
    return summary


def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m emolive.training.train``: train; a user's error is one line on stderr and its exit code."""
    parsed = get_args_parser().parse_args(argv)
    try:
        with distributed.process_group():  # a no-op unless started by torchrun with several processes
            main(parsed)
    except EmoliveError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")  # one write: under torchrun the ranks share this pipe
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(cli())
