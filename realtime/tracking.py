"""Per-face identities across frames: IoU matching with the Hungarian algorithm and a constant-velocity model.

``update(boxes)`` returns one id per box. A track survives ``max_age`` frames without a match (its box
keeps moving with its last velocity), so a face that blinks out for a frame keeps its id; an
unmatched box starts a new id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from emolive.models.preprocess import Box


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes (N, 4) and (M, 4) in (x, y, w, h)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    ax0, ay0, ax1, ay1 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    inter = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None) * np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    union = a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter
    return inter / np.maximum(union, 1e-9)


@dataclass
class _Track:
    id: int
    box: np.ndarray          # (4,) float: x, y, w, h
    velocity: np.ndarray     # (2,) float: centre motion per frame
    misses: int = 0

    def predicted(self) -> np.ndarray:
        box = self.box.copy()
        box[:2] += self.velocity * (self.misses + 1)
        return box


class IoUTracker:
    """Assigns stable ids to face boxes frame after frame."""

    def __init__(self, *, min_iou: float = 0.2, max_age: int = 15, velocity_smoothing: float = 0.5) -> None:
        if not 0.0 <= min_iou < 1.0:
            raise ValueError(f"min_iou must be in [0, 1), got {min_iou}")
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        self.min_iou, self.max_age, self.velocity_smoothing = min_iou, max_age, velocity_smoothing
        self._tracks: list[_Track] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget every track; ids start again from 1."""
        self._tracks.clear()
        self._next_id = 1

    def end_tracks(self) -> None:
        """End every track (after a shot cut); new faces get new ids, numbering continues."""
        self._tracks.clear()

    @property
    def active_ids(self) -> list[int]:
        return [t.id for t in self._tracks]

    def visible(self) -> list[tuple[int, Box]]:
        """Ids and boxes of the tracks matched on the last update (the faces in view right now)."""
        return [(t.id, tuple(int(round(v)) for v in t.box)) for t in self._tracks if t.misses == 0]

    def update(self, boxes: Sequence[Box]) -> list[int]:
        """Match this frame's ``boxes`` to tracks; returns their ids in the same order."""
        detections = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        predicted = np.array([t.predicted() for t in self._tracks]).reshape(-1, 4)
        ious = iou_matrix(predicted, detections)
        matched_track: dict[int, int] = {}
        if ious.size:
            rows, cols = linear_sum_assignment(-ious)
            matched_track = {c: r for r, c in zip(rows, cols) if ious[r, c] >= self.min_iou}
        ids: list[int] = []
        matched_rows = set(matched_track.values())
        for col, box in enumerate(detections):
            if col in matched_track:
                track = self._tracks[matched_track[col]]
                shift = (box[:2] + box[2:] / 2) - (track.box[:2] + track.box[2:] / 2)
                step = shift / (track.misses + 1)
                track.velocity = self.velocity_smoothing * track.velocity + (1 - self.velocity_smoothing) * step
                track.box, track.misses = box.copy(), 0
            else:
                track = _Track(self._next_id, box.copy(), np.zeros(2))
                self._next_id += 1
                self._tracks.append(track)
            ids.append(track.id)
        survivors = []
        for row, track in enumerate(self._tracks):
            if row < len(predicted) and row not in matched_rows:
                track.misses += 1
            if track.misses <= self.max_age:
                survivors.append(track)
        self._tracks = survivors
        return ids
