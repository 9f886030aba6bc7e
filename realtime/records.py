"""Frozen records that flow through the pipeline: frames, detections, face results, frame results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emolive.models.preprocess import Box


@dataclass(frozen=True)
class Frame:
    """One decoded image from a source: its index, time in seconds, origin and pixels (BGR/gray)."""

    index: int
    time: float
    source: str
    image: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class Detection:
    """A face found by a detector: pixel box (x, y, w, h) and detector confidence in [0, 1]."""

    box: Box
    score: float

    def __post_init__(self) -> None:
        if len(self.box) != 4:
            raise ValueError(f"box must be (x, y, w, h), got {self.box!r}")
        if self.box[2] <= 0 or self.box[3] <= 0:
            raise ValueError(f"box width and height must be positive, got {self.box!r}")


@dataclass(frozen=True)
class FaceResult:
    """One classified face. ``probs`` follows ``labels`` order; ``label`` is the label displayed, ``confidence`` its probability.

    With temporal smoothing, ``probs`` is the smoothed distribution and ``raw_probs`` this frame's own.
    ``label`` is the argmax of ``probs``, unless label hysteresis holds an earlier label (``held_label``)
    against a challenger that has not yet won.
    """

    id: int
    box: Box
    detection_score: float
    labels: tuple[str, ...] = field(repr=False)
    probs: tuple[float, ...]
    raw_probs: tuple[float, ...] | None = None
    held_label: str | None = None

    def __post_init__(self) -> None:
        if len(self.probs) != len(self.labels):
            raise ValueError(f"expected {len(self.labels)} probabilities, got {len(self.probs)}")
        if self.raw_probs is not None and len(self.raw_probs) != len(self.labels):
            raise ValueError(f"expected {len(self.labels)} raw probabilities, got {len(self.raw_probs)}")
        if self.held_label is not None and self.held_label not in self.labels:
            raise ValueError(f"held label '{self.held_label}' is not one of {', '.join(self.labels)}")

    @property
    def label(self) -> str:
        return self.held_label if self.held_label is not None else self.labels[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return float(self.probs[self.labels.index(self.label)])

    def to_dict(self) -> dict[str, Any]:
        record = {
            "id": self.id,
            "box": [int(v) for v in self.box],
            "detection_score": round(float(self.detection_score), 4),
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "probs": {name: round(float(p), 4) for name, p in zip(self.labels, self.probs)},
        }
        if self.raw_probs is not None:
            record["raw_probs"] = {name: round(float(p), 4) for name, p in zip(self.labels, self.raw_probs)}
        return record


@dataclass(frozen=True)
class FrameResult:
    """Everything known about one frame: the frame, its faces, and per-stage milliseconds.

    ``detected`` says whether the face detector ran on this frame (False: boxes followed by optical flow).
    """

    frame: Frame
    faces: tuple[FaceResult, ...]
    timings: dict[str, float] = field(default_factory=dict, compare=False)
    detected: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.frame.index,
            "time": round(self.frame.time, 4),
            "source": self.frame.source,
            "detected": self.detected,
            "faces": [face.to_dict() for face in self.faces],
        }
