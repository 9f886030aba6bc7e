"""Train the temporal head of a CNN: ``emo-live train-temporal --data FER2013 --model CNN -o DIR``.

1. Render jittered views of FER2013 Training stills (training) and PublicTest stills (validation) and
   run them through the frozen CNN's ONNX graph with the runtime engine (:mod:`emolive.training.sequences`),
   so the head learns from exactly the features it gets at run time. The stills carry labels in the CNN's
   order: FER2013's, or for a FER+ CNN the FER+ majority labels (``fer2013new.csv``, as ``emo-live eval``). The features are cached under
   ``$EMOLIVE_CACHE/temporal`` (key: CNN sha256 + settings + which stills, see :func:`feature_cache_key`), so a
   stopped run restarts without redoing them.
2. Train :class:`~emolive.models.temporal.TemporalHead` on fresh synthetic sequences every step
   (per-frame cross-entropy), validating per-frame accuracy on fixed PublicTest sequences. The best
   head is kept as ``DIR/NAME.temporal.safetensors`` (atomic) and exported as ``DIR/NAME.temporal.onnx``
   with its :class:`~emolive.models.temporal_info.TemporalInfo` (CNN sha256, metrics) at the end.

The runtime finds a head beside its CNN (``NAME.onnx`` -> ``NAME.temporal.onnx``); ``--install`` copies it
there (for a shipped CNN also recording it in ``manifest.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emolive.models.info import ModelInfo
from emolive.models.shipped import file_sha256, resolve_model_path, weights_dir
from emolive.models.temporal import TemporalHead, export_temporal_onnx
from emolive.models.temporal_info import TEMPORAL_SUFFIX, TemporalInfo, temporal_head_path
from emolive.realtime.engines import OnnxRuntimeEngine
from emolive.realtime.sinks import make_folder
from emolive.training.data import FerSplit, find_source
from emolive.training.distill import rows_digest
from emolive.training.evaluate import ground_truth
from emolive.training.ferplus import FERPLUS_FILE
from emolive.training.sequences import (SequencePlan, ViewJitter, check_counts, gather, plan_sequences, require_two_classes,
                                        view_features)
from emolive.training.temporal_metrics import latency_summary, transition_latencies


def get_args_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="emo-live train-temporal", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="FER2013: fer2013.csv(.gz), the image tarball, or a folder with train/ and test/")
    parser.add_argument("--model", default="default", help="the CNN (shipped name or .onnx path) whose features the head learns (default: %(default)s)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="run folder: the head (.temporal.onnx), its best checkpoint and a summary")
    parser.add_argument("--ferplus", type=Path,
                        help=f"FER+ votes ({FERPLUS_FILE}) labelling the stills for a CNN with FER+ labels (default: looked for beside --data)")
    parser.add_argument("--install", action="store_true",
                        help="also copy the head beside the CNN, where --smooth lstm finds it (and note it in manifest.json for a shipped CNN)")
    parser.add_argument("--train-images", type=int, default=4000, help="Training stills to render (0 = all; default: %(default)s)")
    parser.add_argument("--val-images", type=int, default=1200, help="PublicTest stills for validation (0 = all; default: %(default)s)")
    parser.add_argument("--views", type=int, default=4, help="clean jittered views per still (default: %(default)s)")
    parser.add_argument("--occluded-views", type=int, default=2, help="occluded views per still (default: %(default)s)")
    parser.add_argument("--length", type=int, default=96, help="training sequence length in frames (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per step (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=64, help="LSTM state size (default: %(default)s)")
    parser.add_argument("--projection", type=int, default=64, help="feature projection size (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--dropout", type=float, default=0.2, help="dropout after the projection (default: %(default)s)")
    parser.add_argument("--input-dropout", type=float, default=0.0, help="dropout on the CNN features (default: %(default)s)")
    parser.add_argument("--consistency", type=float, default=0.0,
                        help="weight of the temporal-consistency loss: change of the predicted probabilities between consecutive "
                             "frames with the same true label (0 = off; default: %(default)s)")
    parser.add_argument("--val-every", type=int, default=50, help="validate every N steps (default: %(default)s)")
    parser.add_argument("--val-sequences", type=int, default=600, help="validation sequences of 150 frames (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for ONNX Runtime and PyTorch (0 = ONNX Runtime's choice, 1 for PyTorch)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _subset(split: FerSplit, count: int, seed: int) -> FerSplit:
    if count <= 0 or count >= len(split):
        return split
    order = np.random.default_rng(seed).permutation(len(split))[:count]
    return FerSplit(split.name, split.images[order], split.labels[order], split.keys[order])


def stills_digest(split: FerSplit) -> str:
    """Which stills a feature pool is rendered from: their row keys and labels (:func:`rows_digest`) and their pixels,
    so two datasets whose rows are numbered alike but hold other images do not share a cache."""
    pixels = hashlib.sha256(np.ascontiguousarray(split.images).tobytes()).hexdigest()[:16]
    return f"{rows_digest(split.keys)}-{rows_digest(split.labels)}-{pixels}"


def feature_cache_key(cnn_sha: str, settings: dict[str, Any], args: argparse.Namespace, train: FerSplit, val: FerSplit) -> str:
    """The name part of the cached view features: the CNN, the view settings and the Training/PublicTest stills used."""
    return hashlib.sha256(json.dumps({"cnn": cnn_sha, **settings, "train": args.train_images, "val": args.val_images,
                                      "n": [len(train), len(val)], "stills": [stills_digest(train), stills_digest(val)]},
                                     sort_keys=True).encode()).hexdigest()[:12]


def feature_cache_dir() -> Path:
    return Path(os.environ.get("EMOLIVE_CACHE", Path.home() / ".cache" / "emolive")) / "temporal"


def _pool(engine: OnnxRuntimeEngine, images: np.ndarray, cache: Path, *, views: int, occluded: int, seed: int,
          jitter: ViewJitter, progress: bool, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and probabilities of every view, from ``cache`` when it exists (written atomically)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            return data["features"], data["probs"]
    features, probs = view_features(engine, images, clean_views=views, occluded_views=occluded, seed=seed, jitter=jitter,
                                    progress=progress, desc=desc)
    tmp = cache.with_name(cache.name + ".part.npz")
    np.savez(tmp, features=features, probs=probs)
    os.replace(tmp, cache)
    return features, probs


def run_head(head: TemporalHead, plans: list[SequencePlan], features: np.ndarray, batch: int = 256) -> np.ndarray:
    """Per-frame predicted class ids (B, T) of ``head`` over whole sequences."""
    head.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(plans), batch):
            x = torch.from_numpy(gather(plans[start:start + batch], features))
            out.append(head(x)[0].argmax(-1).numpy())
    return np.concatenate(out)


def sequence_scores(plans: list[SequencePlan], predicted: np.ndarray) -> dict[str, float]:
    """Per-frame accuracy and transition latency of predicted class ids (B, T) against the plans' labels."""
    true = np.stack([p.label for p in plans])
    latencies = [lat for plan, pred in zip(plans, predicted) for lat in transition_latencies(plan.label, pred)]
    return {"accuracy": float((predicted == true).mean()), **latency_summary(latencies)}


def consistency_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean total-variation distance between consecutive frames' probabilities (B, T, C), over pairs whose true label is the same.

    Frame-to-frame jumps inside one expression are flicker; at a true change the cross-entropy alone decides how fast to follow.
    """
    probs = logits.softmax(-1)
    distance = 0.5 * (probs[:, 1:] - probs[:, :-1]).abs().sum(-1)
    same = (labels[:, 1:] == labels[:, :-1]).to(distance.dtype)
    return (distance * same).sum() / same.sum().clamp_min(1.0)


def _save_state(head: TemporalHead, path: Path, meta: dict[str, str]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".part")
    save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()}, str(tmp), metadata=meta)
    os.replace(tmp, path)


def install_head(head_path: Path, cnn_path: Path) -> Path:
    """Copy the head beside its CNN (atomically); for a shipped CNN also record it in ``manifest.json``."""
    import shutil

    target = temporal_head_path(cnn_path)
    if target.resolve() != head_path.resolve():
        tmp = target.with_name(target.name + ".part")
        shutil.copyfile(head_path, tmp)
        os.replace(tmp, target)
    _record_in_manifest(cnn_path, target)
    return target


def _record_in_manifest(cnn_path: Path, head_path: Path) -> bool:
    """Note the head in the weights folder's manifest when the CNN is a shipped model there."""
    manifest_path = head_path.parent / "manifest.json"
    if head_path.parent.resolve() != weights_dir().resolve() or not manifest_path.is_file():
        return False
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["models"].values():
        if entry["onnx"] == cnn_path.name:
            entry["temporal"] = head_path.name
            tmp = manifest_path.with_name(manifest_path.name + ".part")
            tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, manifest_path)
            return True
    return False


def check_args(args: argparse.Namespace) -> None:
    """Refuse out-of-range counts with a one-line InputError, before any data or model loads."""
    check_counts(args, {"views": 1, "occluded_views": 0, "length": 1, "steps": 1, "batch_size": 1, "val_every": 1, "val_sequences": 1,
                        "train_images": 0, "val_images": 0, "hidden": 1, "projection": 1})


def load_stills(info: ModelInfo, args: argparse.Namespace) -> tuple[FerSplit, FerSplit, str]:
    """The Training and PublicTest stills to render, labelled in the CNN's label order (FER+ majority labels for a
    FER+ CNN, see :func:`ground_truth`), and the label set."""
    stills: list[FerSplit] = []
    label_set = "fer2013"
    for split, count, seed, option in (("Training", args.train_images, args.seed, "--train-images"),
                                        ("PublicTest", args.val_images, args.seed + 1, "--val-images")):
        fer, label_set = ground_truth(info, args.data, split, ferplus=args.ferplus)
        chosen = _subset(fer, count, seed)
        require_two_classes(chosen.labels, f"{split} at {args.data} ({label_set} labels)", f"raise {option} (0 = all) or pass data with more classes")
        stills.append(chosen)
    return stills[0], stills[1], label_set


def main(args: argparse.Namespace) -> dict[str, Any]:
    check_args(args)
    wall, cpu = time.perf_counter(), time.process_time()
    torch.set_num_threads(args.threads or 1)  # the head is tiny: one thread beats several fighting over small ops
    torch.manual_seed(args.seed)
    find_source(Path(args.data))  # a wrong data path is reported before any model loads
    cnn_path = resolve_model_path(args.model)
    cnn_sha = file_sha256(cnn_path)
    output = make_folder(args.output, "-o")
    name = cnn_path.name.removesuffix(".onnx")
    jitter = ViewJitter()
    progress = not args.quiet
    with OnnxRuntimeEngine(cnn_path, threads=args.threads) as engine:
        train_stills, val_stills, label_set = load_stills(engine.info, args)
        train_images, train_labels, val_images, val_labels = train_stills.images, train_stills.labels, val_stills.images, val_stills.labels
        settings = {"views": args.views, "occluded": args.occluded_views, "jitter": asdict(jitter), "seed": args.seed}
        key = feature_cache_key(cnn_sha, settings, args, train_stills, val_stills)
        train_features, train_probs = _pool(engine, train_images, feature_cache_dir() / f"views-{key}-train.npz", views=args.views,
                                            occluded=args.occluded_views, seed=args.seed, jitter=jitter, progress=progress, desc="Training views")
        val_features, val_probs = _pool(engine, val_images, feature_cache_dir() / f"views-{key}-val.npz", views=args.views,
                                        occluded=args.occluded_views, seed=args.seed + 1, jitter=jitter, progress=progress, desc="PublicTest views")
    features_seconds = time.perf_counter() - wall

    plan_kwargs = {"clean_views": args.views, "occluded_views": args.occluded_views}
    val_plans = plan_sequences(val_labels, args.val_sequences, 150, seed=10_000 + args.seed, **plan_kwargs)
    single = sequence_scores(val_plans, gather(val_plans, val_probs).argmax(-1))

    head = TemporalHead(train_features.shape[-1], len(engine.info.labels), projection=args.projection, hidden_size=args.hidden,
                        dropout=args.dropout, input_dropout=args.input_dropout)
    optimizer = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    rng = np.random.default_rng(args.seed + 2)
    best: dict[str, float] = {"accuracy": -1.0}
    best_step, history = 0, []
    state_path = output / f"{name}.temporal.safetensors"
    from tqdm import tqdm

    for step in tqdm(range(1, args.steps + 1), desc="train-temporal", disable=not progress, leave=False):
        head.train()
        plans = plan_sequences(train_labels, args.batch_size, args.length, seed=int(rng.integers(1 << 31)), **plan_kwargs)
        x = torch.from_numpy(gather(plans, train_features))
        y = torch.from_numpy(np.stack([p.label for p in plans]))
        logits, _ = head(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        if args.consistency > 0:
            loss = loss + args.consistency * consistency_loss(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % args.val_every == 0 or step == args.steps:
            scores = sequence_scores(val_plans, run_head(head, val_plans, val_features))
            history.append({"step": step, "loss": loss.item(), **scores})
            if scores["accuracy"] > best["accuracy"]:
                best, best_step = scores, step
                _save_state(head, state_path, {"cnn_sha256": cnn_sha, "step": str(step)})

    from safetensors.torch import load_file

    head.load_state_dict(load_file(str(state_path)))
    head.eval()
    metrics = {"public_test_seq_accuracy": round(best["accuracy"], 4), "public_test_seq_single_frame_accuracy": round(single["accuracy"], 4),
               "public_test_seq_median_latency": best["median_latency"], "public_test_seq_followed": round(best["followed"], 4),
               "step": best_step}
    info = TemporalInfo(labels=engine.info.labels, feature_dim=head.feature_dim, hidden_size=head.hidden_size, projection=head.projection,
                        cnn_sha256=cnn_sha, cnn_name=cnn_path.name,
                        training_data=f"synthetic sequences from FER2013 Training ({len(train_labels)} stills x {args.views}+{args.occluded_views} views, "
                                      f"{label_set} labels); "
                                      f"validation: PublicTest ({len(val_labels)} stills)",
                        metrics=metrics, training={"steps": args.steps, "batch_size": args.batch_size, "length": args.length, "lr": args.lr,
                                                   "dropout": args.dropout, "input_dropout": args.input_dropout,
                                                   "consistency": args.consistency,
                                                   "seed": args.seed, **settings})
    head_path = export_temporal_onnx(head, info, output / f"{name}{TEMPORAL_SUFFIX}")
    installed = install_head(head_path, cnn_path) if args.install else None
    summary = {"head": str(head_path), "cnn": str(cnn_path), "cnn_sha256": cnn_sha, "metrics": metrics, "single_frame": single,
               "best": best, "history": history, "installed": None if installed is None else str(installed), "features_seconds": round(features_seconds, 1),
               "wall_seconds": round(time.perf_counter() - wall, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
               "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    tmp = output / "temporal_summary.json.part"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, output / "temporal_summary.json")
    if installed is None and head_path.parent.resolve() != cnn_path.parent.resolve():
        summary["note"] = f"--smooth lstm looks for the head beside the CNN: copy {head_path.name} next to {cnn_path}"
    return summary


if __name__ == "__main__":
    print(json.dumps(main(get_args_parser().parse_args()), indent=1))
