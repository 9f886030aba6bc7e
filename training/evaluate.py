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
from emolive.models.errors import DataError, ModelError
from emolive.models.info import ModelInfo
from emolive.models.labels import EMOTIONS, FERPLUS_EMOTIONS, label_set_name
from emolive.models.preprocess import preprocess_faces
from emolive.models.shipped import resolve_model_path
from emolive.realtime.engines import InferenceEngine, create_engine
from emolive.training.data import FerSplit, find_source, load_fer2013
from emolive.training.ferplus import FERPLUS_FILE, ferplus_targets, find_beside, read_ferplus, rows_of


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


def ferplus_majority_split(fer: FerSplit, data: str | os.PathLike[str], ferplus: str | os.PathLike[str] | None = None) -> FerSplit:
    """The images of ``fer`` that have a FER+ majority label, labelled with it (FERPLUS_EMOTIONS ids)."""
    path = Path(ferplus) if ferplus else find_beside(data, FERPLUS_FILE)
    if path is None:
        raise DataError(f"FER+ evaluation needs {FERPLUS_FILE} beside --data; pass --ferplus PATH")
    targets = ferplus_targets(fer.keys, fer.name, read_ferplus(path), rows_of(fer.keys, data), "ferplus-majority")
    keep = targets.keep
    return FerSplit(fer.name, fer.images[keep], targets.labels[keep], fer.keys[keep])


def ground_truth(info: ModelInfo, data: str | os.PathLike[str], split: str, labels: str = "auto",
                 ferplus: str | os.PathLike[str] | None = None) -> tuple[FerSplit, str]:
    """The split with labels in the model's label order: FER2013 labels, or FER+ majority labels for FER+ models.

    ``labels``: ``fer2013`` (the 7 original labels), ``ferplus-majority`` (FER+ majority labels, rows without a
    majority dropped), or ``auto``: whichever label set the model's metadata lists. Returns the split and the label
    set used; a model with other labels, or a split left with no images, is a one-line error.
    """
    if labels == "auto":
        labels = "ferplus-majority" if label_set_name(info.labels) == "ferplus" else "fer2013"
    needed = EMOTIONS if labels == "fer2013" else FERPLUS_EMOTIONS
    if info.labels != needed:
        raise ModelError(f"the model predicts {', '.join(info.labels)}; --labels {labels} needs a model with the labels {', '.join(needed)}")
    fer = load_fer2013(data, split)
    if labels == "ferplus-majority":
        fer = ferplus_majority_split(fer, data, ferplus)
    return require_images(fer, data, labels), labels


def require_images(fer: FerSplit, data: str | os.PathLike[str], labels: str = "fer2013") -> FerSplit:
    """``fer`` itself, or a one-line DataError when it holds no images (a copy without that split, or no FER+ majority rows)."""
    if len(fer) == 0:
        which = "" if labels == "fer2013" else f" with {labels} labels"
        raise DataError(f"the {fer.name} split of {data} has no images{which}; pass a FER2013 copy that has it")
    return fer


def evaluate_model(model: str | os.PathLike[str], data: str | os.PathLike[str], split: str, *,
                   engine: str = "auto", batch_size: int = 256, threads: int = 0, progress: bool = True,
                   labels: str = "auto", ferplus: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Load ``model``, predict ``split`` of the FER2013 data at ``data``, and return its metrics.

    ``labels``: see :func:`ground_truth`.
    """
    find_source(Path(data))  # a wrong data path is reported before any model loads
    path = resolve_model_path(model)
    with create_engine(engine, path, threads=threads) as runner:
        fer, labels = ground_truth(runner.info, data, split, labels, ferplus)
        probs = predict_split(runner, fer, batch_size=batch_size, progress=progress)
        metrics = classification_metrics(fer.labels, probs, runner.info.labels)
    metrics.update({"model": str(path), "split": split, "data": str(Path(data)), "label_set": labels})
    return metrics


def format_report(metrics: dict[str, Any]) -> str:
    """The metrics as a plain-text table for people."""
    names = metrics["labels"]
    lines = [f"{metrics['split']} ({metrics.get('label_set', 'fer2013')} labels): {metrics['n']} images, model {metrics['model']}",
             f"accuracy {metrics['accuracy']:.4f}   macro-F1 {metrics['macro_f1']:.4f}   ECE {metrics['ece']:.4f}", "",
             f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name in names:
        row = metrics["per_class"][name]
        lines.append(f"{name:<10}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>10.3f}{row['support']:>10d}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)", " " * 10 + "".join(f"{n[:7]:>8}" for n in names)]
    for name, row in zip(names, metrics["confusion_matrix"]):
        lines.append(f"{name:<10}" + "".join(f"{v:>8d}" for v in row))
    return "\n".join(lines)
