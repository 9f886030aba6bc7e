"""Knowledge distillation targets: blend the labels with a teacher model's probabilities.

``emo-live train --teacher accurate`` runs the teacher (any emolive ONNX model or shipped name, e.g.
an ensemble with test-time views) once over the training images, through the teacher's own
preprocessing, and trains on ``(1 - weight) * label + weight * softmax(teacher_logits / T)``. The
student sees augmented images while the teacher saw the clean ones (offline distillation): one
teacher pass instead of one per step. The probabilities are cached in the run folder, so a resumed
run does not recompute them and a changed teacher is noticed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from emolive.models.errors import InputError
from emolive.models.shipped import file_sha256, resolve_model_path
from emolive.training.data import FerSplit

CACHE_NAME = "teacher_probs.npz"


def teacher_probabilities(teacher: str, split: FerSplit, labels: tuple[str, ...], temperature: float, cache_dir: Path,
                          *, progress: bool = True) -> np.ndarray:
    """The teacher's probabilities (N, C) at ``temperature`` for every image of ``split`` (cached in ``cache_dir``)."""
    from emolive.realtime.engines import OnnxRuntimeEngine, softmax
    from emolive.training.evaluate import predict_split

    if temperature <= 0:
        raise InputError(f"--teacher-temperature must be positive, got {temperature}")
    path = resolve_model_path(teacher)
    key = {"teacher": file_sha256(path), "images": int(len(split)), "rows": rows_digest(split.keys)}
    cache = cache_dir / CACHE_NAME
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            if json.loads(str(stored["key"])) == key:
                return softmax(stored["logits"], temperature)
    with OnnxRuntimeEngine(path) as engine:
        if engine.info.labels != labels:
            raise InputError(f"teacher {teacher} predicts {', '.join(engine.info.labels)}, not the {len(labels)} training labels; "
                             "pass a teacher trained on the same labels")
        logits = predict_split(engine, split, logits=True, progress=progress)
    tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.part.npz")  # one per process under torchrun
    np.savez(tmp, logits=logits, key=np.array(json.dumps(key)))
    tmp.replace(cache)
    return softmax(logits, temperature)


def rows_digest(keys: np.ndarray) -> str:
    """A short fingerprint of the training rows (which images, in which order); keys are row numbers or file names."""
    return hashlib.sha256("\n".join(str(k) for k in keys.tolist()).encode()).hexdigest()[:16]


def blend_targets(labels: torch.Tensor, teacher: np.ndarray, weight: float) -> torch.Tensor:
    """``(1 - weight) * targets + weight * teacher``; ``labels`` are class ids (N,) or probabilities (N, C)."""
    if not 0 < weight <= 1:
        raise InputError(f"--teacher-weight must be in (0, 1], got {weight}")
    soft = torch.from_numpy(teacher).float()
    hard = labels.float() if labels.ndim == 2 else torch.nn.functional.one_hot(labels.long(), soft.shape[1]).float()
    if hard.shape != soft.shape:
        raise InputError(f"the teacher gave {tuple(soft.shape)} probabilities for {tuple(hard.shape)} targets")
    return (1 - weight) * hard + weight * soft
