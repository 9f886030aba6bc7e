"""Knowledge distillation targets: blend the labels with a teacher model's probabilities.

``emo-live train --teacher accurate`` runs the teacher (any emolive ONNX model or shipped name, e.g.
an ensemble with test-time views) once over the training images, through the teacher's own
preprocessing, and trains on ``(1 - weight) * label + weight * softmax(teacher_logits / T)``. The
student sees augmented images while the teacher saw the clean ones (offline distillation): one
teacher pass instead of one per step. The probabilities are cached in the run folder, so a resumed
run does not recompute them and a changed teacher is noticed.

``--teacher-mode online`` runs the teacher on every batch instead, on exactly the augmented (and
mixed) images the student sees (:class:`OnlineTeacher`), so the target describes the image being
learned rather than the clean one: consistent teaching in the sense of Beyer et al., "Knowledge
distillation: A good teacher is patient and consistent" (CVPR 2022). It costs one teacher forward
pass per training image per epoch.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from emolive.models.errors import InputError
from emolive.models.preprocess import PreprocessSpec
from emolive.models.shipped import file_sha256, resolve_model_path
from emolive.training.data import FerSplit

if TYPE_CHECKING:
    from emolive.realtime.engines import OnnxRuntimeEngine

CACHE_NAME = "teacher_probs.npz"
TEACHER_MODES: tuple[str, ...] = ("offline", "online")
"""``offline``: one teacher pass over the clean images, cached; ``online``: the teacher labels every augmented batch."""


def teacher_probabilities(teacher: str, split: FerSplit, labels: tuple[str, ...], temperature: float, cache_dir: Path,
                          *, progress: bool = True) -> np.ndarray:
    """The teacher's probabilities (N, C) at ``temperature`` for every image of ``split`` (cached in ``cache_dir``)."""
    from emolive.realtime.engines import softmax
    from emolive.training.evaluate import predict_split

    check_temperature(temperature)
    path = resolve_model_path(teacher)
    key = {"teacher": file_sha256(path), "images": int(len(split)), "rows": rows_digest(split.keys)}
    cache = cache_dir / CACHE_NAME
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            if json.loads(str(stored["key"])) == key:
                return softmax(stored["logits"], temperature)
    with open_teacher(path, labels, teacher) as engine:
        logits = predict_split(engine, split, logits=True, progress=progress)
    tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.part.npz")  # one per process under torchrun
    np.savez(tmp, logits=logits, key=np.array(json.dumps(key)))
    tmp.replace(cache)
    return softmax(logits, temperature)


class OnlineTeacher:
    """The teacher run on each training batch as the student sees it; a context manager that owns its ONNX Runtime session.

    The batch is already preprocessed for the student, so the teacher must share the student's input size and
    normalization (the detector-box margin does not matter: FER2013 images are whole crops).
    """

    def __init__(self, teacher: str, labels: tuple[str, ...], spec: PreprocessSpec, temperature: float, *, threads: int = 0,
                 gpu: bool = False) -> None:
        from emolive.realtime.engines import onnxruntime_providers

        check_temperature(temperature)
        self.temperature = temperature
        # a CUDA student gets ONNX Runtime's CUDA provider where installed (not TensorRT's: an engine build per batch shape)
        providers = [p for p in onnxruntime_providers() if p != "TensorrtExecutionProvider"] if gpu else None
        self.engine = open_teacher(resolve_model_path(teacher), labels, teacher, threads=threads, providers=providers,
                                   spinning=False)  # idle threads sleep
        given = self.engine.info.preprocess
        if (given.size, given.mean, given.std) != (spec.size, spec.mean, spec.std):
            self.close()
            raise InputError(f"teacher {teacher} takes {given.size}x{given.size} input normalized with mean {given.mean}, std {given.std}, "
                             f"but the student {spec.size}x{spec.size} with mean {spec.mean}, std {spec.std}; "
                             "use --teacher-mode offline, which runs the teacher through its own preprocessing")

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """Softmax of the teacher's logits at the temperature, (N, C), on ``batch``'s device."""
        from emolive.realtime.engines import softmax

        logits = self.engine.logits(batch.detach().float().cpu().contiguous().numpy())
        return torch.from_numpy(softmax(logits, self.temperature)).to(batch.device)

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> OnlineTeacher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_teacher(path: Path, labels: tuple[str, ...], teacher: str, **engine_options: Any) -> OnnxRuntimeEngine:
    """An ONNX Runtime session on the teacher's resolved ONNX ``path``, refused unless it predicts ``labels``; ``teacher``
    is the name the user gave, for the message."""
    from emolive.realtime.engines import OnnxRuntimeEngine

    engine = OnnxRuntimeEngine(path, **engine_options)
    if engine.info.labels != labels:
        engine.close()
        raise InputError(f"teacher {teacher} predicts {', '.join(engine.info.labels)}, not the {len(labels)} training labels; "
                         "pass a teacher trained on the same labels")
    return engine


def check_temperature(temperature: float) -> None:
    if temperature <= 0:
        raise InputError(f"--teacher-temperature must be positive, got {temperature}")


def check_weight(weight: float) -> None:
    if not 0 < weight <= 1:
        raise InputError(f"--teacher-weight must be in (0, 1], got {weight}")


def rows_digest(keys: np.ndarray) -> str:
    """A short fingerprint of the training rows (which images, in which order); keys are row numbers or file names."""
    return hashlib.sha256("\n".join(str(k) for k in keys.tolist()).encode()).hexdigest()[:16]


def blend_targets(labels: torch.Tensor, teacher: np.ndarray | torch.Tensor, weight: float) -> torch.Tensor:
    """``(1 - weight) * targets + weight * teacher``; ``labels`` are class ids (N,) or probabilities (N, C)."""
    check_weight(weight)
    soft = (torch.from_numpy(teacher) if isinstance(teacher, np.ndarray) else teacher).float()
    hard = labels.float() if labels.ndim == 2 else torch.nn.functional.one_hot(labels.long(), soft.shape[1]).float()
    if hard.shape != soft.shape:
        raise InputError(f"the teacher gave {tuple(soft.shape)} probabilities for {tuple(hard.shape)} targets")
    return (1 - weight) * hard + weight * soft
