"""Follow faces between detector runs with pyramidal Lucas-Kanade optical flow, and spot scene changes.

The detector is the most expensive stage; on most video frames a face has moved a few pixels since
the last one. :class:`FaceFollower` moves each box by the median flow of a grid of points inside it
(scaled by the median change of the points' spread) and says how trustworthy that was, so the
pipeline can fall back to the detector the moment a face is lost. :class:`SceneMonitor` compares tiny
thumbnails of consecutive frames: a large change means "detect now", a shot cut also means "these are
new people" (tracks and smoothing start afresh).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from emolive.models.preprocess import Box, to_gray_uint8

GRID = 4
"""Points per box side: GRID x GRID points over the central part of each face."""


@dataclass(frozen=True)
class FollowedBox:
    """Where a face moved to, and the share of its points that tracked consistently (0..1)."""

    box: Box
    quality: float


_UNIT_GRID = np.stack(np.meshgrid(np.linspace(0.2, 0.8, GRID), np.linspace(0.2, 0.8, GRID)), axis=-1).reshape(-1, 1, 2)


def _grid_points(box: Box) -> np.ndarray:
    x, y, w, h = box
    return (_UNIT_GRID * (w, h) + (x, y)).astype(np.float32)


class FaceFollower:
    """Moves face boxes from one gray frame to the next; one instance per stream."""

    def __init__(self, *, window: int = 11, levels: int = 2, max_error: float = 0.5, min_quality: float = 0.5,
                 face_side: int = 64) -> None:
        self.lk = {"winSize": (window, window), "maxLevel": levels,
                   "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03)}
        self.max_error, self.min_quality, self.face_side = max_error, min_quality, face_side

    def follow(self, previous: np.ndarray, current: np.ndarray, boxes: Sequence[Box]) -> list[FollowedBox]:
        """Move ``boxes`` (found in gray frame ``previous``) into gray frame ``current``.

        Each box's points are tracked forward and back inside a window around the box only (not the
        whole frame), shrunk so the face is about ``face_side`` pixels; a point counts when it comes back
        within ``max_error`` of those pixels. A box whose quality is below ``min_quality`` should be
        re-detected.
        """
        return [self._follow_one(previous, current, box) for box in boxes]

    def _follow_one(self, previous: np.ndarray, current: np.ndarray, box: Box) -> FollowedBox:
        height, width = current.shape[:2]
        x, y, w, h = box
        pad = int(max(w, h) * 0.5) + self.lk["winSize"][0]
        x0, y0 = max(0, int(x) - pad), max(0, int(y) - pad)
        x1, y1 = min(width, int(x + w) + pad), min(height, int(y + h) + pad)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return FollowedBox(box, 0.0)
        before_roi, after_roi = previous[y0:y1, x0:x1], current[y0:y1, x0:x1]
        points = _grid_points(box) - np.array([x0, y0], np.float32)
        # Track at a fixed face size: a large face costs no more than a small one (errors in ROI pixels).
        zoom = min(1.0, self.face_side / max(w, h))
        if zoom < 1.0:
            size = (max(8, round((x1 - x0) * zoom)), max(8, round((y1 - y0) * zoom)))
            before_roi = cv2.resize(before_roi, size, interpolation=cv2.INTER_LINEAR)
            after_roi = cv2.resize(after_roi, size, interpolation=cv2.INTER_LINEAR)
            points = points * zoom
        forward, status, _ = cv2.calcOpticalFlowPyrLK(before_roi, after_roi, points, None, **self.lk)
        backward, status_back, _ = cv2.calcOpticalFlowPyrLK(after_roi, before_roi, forward, None, **self.lk)
        back_error = (backward - points).reshape(-1, 2)
        ok = (status.ravel() == 1) & (status_back.ravel() == 1) & ((back_error ** 2).sum(1) < self.max_error ** 2)
        if ok.sum() < 3:
            return FollowedBox(box, 0.0)
        before, after = points[ok].reshape(-1, 2), forward[ok].reshape(-1, 2)
        shift = np.median(after - before, axis=0) / zoom
        spread_before = np.hypot(*(before - before.mean(axis=0)).T)
        spread_after = np.hypot(*(after - after.mean(axis=0)).T)
        usable = spread_before > 1e-3
        scale = min(max(float(np.median(spread_after[usable] / spread_before[usable])), 0.8), 1.25)
        cx, cy = x + w / 2 + shift[0], y + h / 2 + shift[1]
        nw, nh = w * scale, h * scale
        bx0, by0 = max(0.0, cx - nw / 2), max(0.0, cy - nh / 2)
        bx1, by1 = min(float(width), cx + nw / 2), min(float(height), cy + nh / 2)
        if bx1 - bx0 < 2 or by1 - by0 < 2:
            return FollowedBox(box, 0.0)
        moved = (int(round(bx0)), int(round(by0)), int(round(bx1 - bx0)), int(round(by1 - by0)))
        return FollowedBox(moved, float(ok.mean()))


def gray_frame(image: np.ndarray) -> np.ndarray:
    """The 8-bit gray version of a frame that following works on."""
    return to_gray_uint8(image)


class SceneMonitor:
    """Flags frames that differ a lot from the previous one (re-detect) or start a new shot (new people).

    Each frame is shrunk to a 32x18 gray thumbnail (microseconds); the score is the mean absolute
    difference to the previous frame's thumbnail (0..255). On the clips in ``../shared/media`` ordinary
    motion stays below 13 and every shot cut scores 25 or more, hence the defaults.
    """

    def __init__(self, *, change_threshold: float = 8.0, cut_threshold: float = 20.0) -> None:
        if not 0 < change_threshold <= cut_threshold:
            raise ValueError(f"need 0 < change_threshold <= cut_threshold, got {change_threshold} and {cut_threshold}")
        self.change_threshold, self.cut_threshold = change_threshold, cut_threshold
        self._previous: np.ndarray | None = None

    def reset(self) -> None:
        self._previous = None

    def update(self, gray: np.ndarray) -> tuple[bool, bool]:
        """(changed a lot, shot cut) for this gray frame compared with the previous one."""
        thumb = cv2.resize(gray, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
        difference = 0.0 if self._previous is None else float(np.abs(thumb - self._previous).mean())
        self._previous = thumb
        return difference > self.change_threshold, difference > self.cut_threshold
