"""Train a FER2013 emotion classifier: ``emo-live train`` / ``python -m emolive.training.train``.

Shape follows torchvision's reference script: :func:`get_args_parser` -> :func:`main` ->
:func:`train_one_epoch` / :func:`evaluate`. Every epoch writes ``last.pt`` (model, optimizer,
scheduler, EMA, epoch, args, history; loaded back with ``weights_only=True``) so ``--resume`` continues
a stopped run; the best PublicTest model is kept as ``best.safetensors`` and exported to
``best.onnx`` with its metadata at the end. PrivateTest is not touched here: evaluate the final model
once with ``emo-live eval``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from emolive.models.checkpoint import save_weights
from emolive.models.info import ModelInfo
from emolive.models.labels import EMOTIONS
from emolive.models.onnx_io import export_onnx
from emolive.models.preprocess import PreprocessSpec, preprocess_faces
from emolive.models.registry import create_model, list_models
from emolive.training.augment import AugmentConfig, augment_batch
from emolive.training.data import FerSplit, load_fer2013


def get_args_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16", help="autocast dtype on CPU (bf16 is ~2x faster here)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = all cores")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="use only this many training images (smoke tests)")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT/last.pt")
    parser.add_argument("--no-export", action="store_true", help="skip the ONNX export at the end")
    return parser


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def to_tensor(split: FerSplit, spec: PreprocessSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocess a whole split through the shared preprocessing function."""
    batch = np.concatenate([preprocess_faces(image, None, spec) for image in split.images]) if len(split) else np.empty((0, 1, spec.size, spec.size), np.float32)
    return torch.from_numpy(batch), torch.from_numpy(split.labels)


def class_weights(labels: torch.Tensor, mode: str, num_classes: int) -> torch.Tensor | None:
    if mode == "none":
        return None
    counts = torch.bincount(labels, minlength=num_classes).float().clamp(min=1)
    weights = (counts.sum() / counts) if mode == "inverse" else (counts.sum() / counts).sqrt()
    return weights / weights.mean()


def autocast(device: torch.device, precision: str):
    enabled = precision == "bf16"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, images: torch.Tensor,
                    labels: torch.Tensor, args: argparse.Namespace, epoch: int, generator: torch.Generator,
                    ema: AveragedModel | None, loss_weights: torch.Tensor | None, device: torch.device) -> dict[str, float]:
    model.train()
    order = torch.randperm(len(labels), generator=generator)
    cfg = AugmentConfig(strength=args.augment_strength)
    total_loss, correct, seen = 0.0, 0, 0
    steps = math.ceil(len(order) / args.batch_size)
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch", leave=False, dynamic_ncols=True)
    for step in bar:
        index = order[step * args.batch_size:(step + 1) * args.batch_size]
        x, y = images[index].to(device), labels[index].to(device)
        if args.augment_strength > 0:
            x = augment_batch(x, cfg, generator)
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, args.precision):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, weight=loss_weights, label_smoothing=args.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if args.schedule == "onecycle":
            scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
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
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch,
                                                   pct_start=0.15, div_factor=20.0, final_div_factor=200.0)
    if args.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs, eta_min=args.lr * 1e-3)
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=(1e-2) ** (1.0 / max(args.epochs, 1)))


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run training; returns the summary written to OUTPUT/summary.json."""
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = seed_everything(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    spec = PreprocessSpec()  # FER2013 images are whole face crops; the detector-box margin is set at release

    train_split = load_fer2013(args.data, "Training")
    val_split = load_fer2013(args.data, "PublicTest")
    if args.limit:
        keep = np.sort(np.random.default_rng(args.seed).permutation(len(train_split))[:args.limit])
        train_split = FerSplit(train_split.name, train_split.images[keep], train_split.labels[keep], train_split.keys[keep])
    train_x, train_y = to_tensor(train_split, spec)
    val_x, val_y = to_tensor(val_split, spec)

    model = create_model(args.model, num_classes=len(EMOTIONS)).to(device).to(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if args.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=args.lr)
    else:
        optimizer = torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True)
    steps_per_epoch = math.ceil(len(train_y) / args.batch_size)
    scheduler = build_scheduler(optimizer, args, steps_per_epoch)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema_decay), use_buffers=True) if args.ema_decay > 0 else None
    loss_weights = class_weights(train_y, args.class_weights, len(EMOTIONS))

    start_epoch, best_acc, history, wall = 0, -1.0, [], 0.0
    last = out / "last.pt"
    if args.resume and last.is_file():
        state = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["lr_scheduler"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        generator.set_state(state["generator"])
        start_epoch, best_acc, history, wall = state["epoch"] + 1, state["best_accuracy"], json.loads(state["history"]), state["wall_seconds"]
        print(f"resumed from {last} at epoch {start_epoch}")

    info_kwargs = {"arch": args.model, "labels": EMOTIONS, "preprocess": spec, "training_data": f"FER2013 Training ({len(train_y)} images)"}
    stale = 0
    for epoch in range(start_epoch, args.epochs):
        tic = time.perf_counter()
        record = {"epoch": epoch + 1, **train_one_epoch(model, optimizer, scheduler, train_x, train_y, args, epoch, generator, ema, loss_weights, device)}
        evaluated = ema.module if ema is not None else model
        record.update({f"val_{k}": v for k, v in evaluate(evaluated, val_x, val_y, device).items()})
        wall += time.perf_counter() - tic
        record["wall_seconds"] = round(wall, 1)
        history.append(record)
        improved = record["val_accuracy"] > best_acc
        if improved:
            best_acc, stale = record["val_accuracy"], 0
            info = ModelInfo(**info_kwargs, metrics={"public_test_accuracy": round(best_acc, 4), "epoch": epoch + 1})
            save_weights(evaluated, info, out / "best.safetensors")
        else:
            stale += 1
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "lr_scheduler": scheduler.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None, "generator": generator.get_state(), "epoch": epoch,
                    "best_accuracy": best_acc, "history": json.dumps(history), "wall_seconds": wall, "args": json.dumps(vars(args))},
                   out / "last.pt.part")
        os.replace(out / "last.pt.part", last)
        (out / "history.json").write_text(json.dumps(history, indent=1))
        print(f"epoch {epoch + 1}/{args.epochs} loss {record['train_loss']:.4f} train {record['train_accuracy']:.4f} "
              f"PublicTest {record['val_accuracy']:.4f}{' *' if improved else ''} ({wall / 60:.1f} min)", flush=True)
        if args.patience and stale >= args.patience:
            print(f"early stop: no PublicTest gain for {args.patience} epochs")
            break

    summary = {"best_public_test_accuracy": best_acc, "epochs_run": len(history), "wall_seconds": round(wall, 1),
               "args": vars(args), "torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads()}
    if not args.no_export and (out / "best.safetensors").is_file():
        from emolive.models.checkpoint import load_model

        best_model, best_info = load_model(out / "best.safetensors")
        export_onnx(best_model, best_info, out / "best.onnx")
        summary["onnx"] = str(out / "best.onnx")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main(get_args_parser().parse_args())
