"""Evaluate a model file on a FER2013 split: ``emo-live eval``.

Runs the exported ONNX model through the same engine and the same :func:`preprocess_faces` as the
realtime pipeline, so the figure it prints is the accuracy users get on face crops. Needs no PyTorch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from tqdm import tqdm

from emolive.calibration.temperature import expected_calibration_error
from emolive.models.errors import ModelError
from emolive.models.preprocess import preprocess_faces
from emolive.models.shipped import resolve_model_path
from emolive.realtime.engines import InferenceEngine, create_engine
from emolive.training.data import FerSplit, find_source, load_fer2013


def predict_split(engine: InferenceEngine, split: FerSplit, *, batch_size: int = 256, progress: bool = True,
                  logits: bool = False) -> np.ndarray:
    """Probabilities (or raw ``logits``) (N, C) for every image of ``split``; each image is one whole face crop."""
    spec = engine.info.preprocess
    out = np.empty((len(split), engine.info.num_classes), dtype=np.float32)
    for start in tqdm(range(0, len(split), batch_size), desc=f"eval {split.name}", unit="batch", disable=not progress, leave=False):
        images = split.images[start:start + batch_size]
        batch = np.concatenate([preprocess_faces(image, None, spec) for image in images])
        out[start:start + len(images)] = engine.logits(batch) if logits else engine.classify(batch)
    return out


def classification_metrics(labels: np.ndarray, probs: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix and ECE (15 bins)."""
    predicted = probs.argmax(axis=1)
    ids = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=ids, zero_division=0)
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "macro_f1": float(f1_score(labels, predicted, labels=ids, average="macro", zero_division=0)),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(names, precision, recall, f1, support)},
        "confusion_matrix": confusion_matrix(labels, predicted, labels=ids).tolist(),
        "ece": expected_calibration_error(probs, labels, bins=15),
        "labels": list(names),
        "n": int(len(labels)),
    }


def evaluate_model(model: str | os.PathLike[str], data: str | os.PathLike[str], split: str, *,
                   engine: str = "auto", batch_size: int = 256, threads: int = 0, progress: bool = True) -> dict[str, Any]:
    """Load ``model``, predict ``split`` of the FER2013 data at ``data``, and return its metrics."""
    find_source(Path(data))  # a wrong data path is reported before any model loads
    path = resolve_model_path(model)
    with create_engine(engine, path, threads=threads) as runner:
        fer = load_fer2013(data, split)
        if runner.info.num_classes != 7:
            raise ModelError(f"{path} has {runner.info.num_classes} labels; FER2013 evaluation needs a 7-class model")
        probs = predict_split(runner, fer, batch_size=batch_size, progress=progress)
        metrics = classification_metrics(fer.labels, probs, runner.info.labels)
    metrics.update({"model": str(path), "split": split, "data": str(Path(data))})
    return metrics


def format_report(metrics: dict[str, Any]) -> str:
    """The metrics as a plain-text table for people."""
    names = metrics["labels"]
    lines = [f"{metrics['split']}: {metrics['n']} images, model {metrics['model']}",
             f"accuracy {metrics['accuracy']:.4f}   macro-F1 {metrics['macro_f1']:.4f}   ECE {metrics['ece']:.4f}", "",
             f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name in names:
        row = metrics["per_class"][name]
        lines.append(f"{name:<10}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>10.3f}{row['support']:>10d}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)", " " * 10 + "".join(f"{n[:7]:>8}" for n in names)]
    for name, row in zip(names, metrics["confusion_matrix"]):
        lines.append(f"{name:<10}" + "".join(f"{v:>8d}" for v in row))
    return "\n".join(lines)
