"""Compare trained models: ``emo-live compare RUN_OR_MODEL... --data PATH -o table.md``.

One markdown row per model: architecture, parameters, MFLOPs per face (counted by
``torch.utils.flop_counter.FlopCounterMode`` on the network the ONNX graph runs, mirror pass included
when the model uses test-time augmentation), CPU milliseconds per face at batch 8 with ONNX Runtime
(measured here), PublicTest and PrivateTest accuracy (measured here on the ONNX model), and the
training wall time of its run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emolive.models.errors import require
from emolive.models.info import ModelInfo
from emolive.realtime.benchmark import engine_ms_per_face
from emolive.realtime.engines import OnnxRuntimeEngine
from emolive.realtime.sinks import atomic_path, prepare_output
from emolive.training.data import find_source
from emolive.training.evaluate import ground_truth, predict_split
from emolive.training.runs import open_model_files, training_time


@dataclass(frozen=True)
class ComparisonRow:
    """One model's figures; every number measured or counted by :func:`compare_models`."""

    name: str
    source: str
    arch: str
    parameters: int
    mflops: float
    tta: str
    ms_per_face: float
    public_accuracy: float
    private_accuracy: float
    train_seconds: float | None
    epochs: int | None
    train_time_from: str
    label_set: str = "fer2013"


def count_parameters_and_flops(info: ModelInfo) -> tuple[int, float]:
    """(parameters, FLOPs per face) of the network ``info`` describes; weights do not change either, so it is rebuilt untrained."""
    torch = require("torch", "train", "counting FLOPs")
    from torch.utils.flop_counter import FlopCounterMode

    from emolive.models.networks import with_test_time_views
    from emolive.models.registry import create_model

    network = create_model(info.arch, num_classes=info.num_classes, **info.arch_kwargs).eval()
    parameters = sum(p.numel() for p in network.parameters())
    deployed = with_test_time_views(network, info.test_time_augmentation).eval()
    size = info.preprocess.size
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        deployed(torch.zeros(1, 1, size, size))
    return parameters, float(counter.get_total_flops())


def compare_models(models: Sequence[str | os.PathLike[str]], data: str | os.PathLike[str], *, threads: int = 0,
                   progress: bool = True, ferplus: str | os.PathLike[str] | None = None) -> list[ComparisonRow]:
    """Measure each model (shipped name, .onnx, .safetensors or run folder) on PublicTest and PrivateTest.

    FER+ models are scored on FER+ majority labels from ``ferplus`` (default: fer2013new.csv beside ``data``).
    """
    find_source(Path(data))
    rows = []
    with contextlib.ExitStack() as stack:
        opened = []
        for spec in models:  # open every model first: a bad one fails before minutes of measuring the others
            files = stack.enter_context(open_model_files(spec))
            engine = stack.enter_context(OnnxRuntimeEngine(files.onnx, threads=threads))
            splits = {split: ground_truth(engine.info, data, split, ferplus=ferplus) for split in ("PublicTest", "PrivateTest")}
            opened.append((files, engine, splits))
        for files, engine, splits in opened:
            info = engine.info
            accuracy = {}
            for split, (fer, label_set) in splits.items():
                accuracy[split] = float((predict_split(engine, fer, progress=progress).argmax(axis=1) == fer.labels).mean())
            ms = engine_ms_per_face(engine, batch=8)
            parameters, flops = count_parameters_and_flops(info)
            seconds, epochs, where = training_time(files, info.metrics)
            rows.append(ComparisonRow(files.name, str(files.onnx if not files.exported else files.safetensors), info.arch, parameters,
                                      flops / 1e6, info.test_time_augmentation, ms, accuracy["PublicTest"], accuracy["PrivateTest"],
                                      seconds, epochs, where, label_set))
    return rows


def format_table(rows: Sequence[ComparisonRow]) -> str:
    """The rows as a markdown table with a note on how each column was measured."""
    lines = ["| model | architecture | parameters | MFLOPs / face | TTA | CPU ms / face (batch 8) | PublicTest acc | PrivateTest acc | training time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        time = "n/a" if r.train_seconds is None else f"{r.train_seconds / 60:.1f} min" + (f" / {r.epochs} ep" if r.epochs else "")
        if r.train_time_from.endswith("(training in progress)"):
            time += " (in progress)"
        mark = "" if r.label_set == "fer2013" else " †"
        lines.append(f"| {r.name} | {r.arch} | {r.parameters:,} | {r.mflops:.1f} | {r.tta} | {r.ms_per_face:.3f} | "
                     f"{r.public_accuracy:.4f}{mark} | {r.private_accuracy:.4f}{mark} | {time} |")
    lines += ["", "MFLOPs: torch.utils.flop_counter on one 48x48 face (multiply-add = 2 FLOPs; times the test-time views: 2 for hflip, 4 for hflip_zoom). "
              "CPU ms: ONNX Runtime, median of 200 batches of 8. Accuracies: the ONNX model on FER2013, measured by this command. "
              "Training time: the run's summary.json / history.json, else the model card."]
    if any(r.label_set != "fer2013" for r in rows):
        lines += ["", "† on FER+ majority labels (8 classes with contempt; images without a majority left out), not FER2013's."]
    return "\n".join(lines) + "\n"


def write_table(rows: Sequence[ComparisonRow], path: str | os.PathLike[str]) -> Path:
    path = prepare_output(path)
    with atomic_path(path) as tmp:
        tmp.write_text(format_table(rows), encoding="utf-8")
    return path


def rows_as_dicts(rows: Sequence[ComparisonRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
