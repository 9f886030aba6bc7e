"""Draw face boxes, labels and confidences on frames, one colour per emotion."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .records import FaceResult

# BGR colours per emotion, shared by the overlay and every plot.
EMOTION_COLORS_BGR: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220),
    "disgust": (60, 150, 40),
    "fear": (160, 60, 150),
    "happy": (0, 200, 255),
    "sad": (200, 120, 30),
    "surprise": (0, 140, 255),
    "neutral": (170, 170, 170),
    "contempt": (120, 90, 60),
}
_FALLBACK = (255, 255, 255)


def color_for(label: str) -> tuple[int, int, int]:
    return EMOTION_COLORS_BGR.get(label, _FALLBACK)


def blur_faces(canvas: np.ndarray, faces: Sequence[FaceResult]) -> np.ndarray:
    """Blur, in place, every face box so nobody can be recognized in the output."""
    for face in faces:
        x, y, w, h = face.box
        region = canvas[y:y + h, x:x + w]
        if region.size:
            small = cv2.resize(region, (max(1, w // 12), max(1, h // 12)), interpolation=cv2.INTER_AREA)
            canvas[y:y + h, x:x + w] = cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), (0, 0), max(1.0, w / 30))
    return canvas


def draw_faces(image: np.ndarray, faces: Sequence[FaceResult], *, show_id: bool = True, blur: bool = False) -> np.ndarray:
    """Return a BGR copy of ``image`` with each face's box and "#id label 87%" tag drawn on it (faces blurred if asked)."""
    from .detectors import to_bgr

    canvas = to_bgr(image).copy()
    if blur:
        blur_faces(canvas, faces)
    height, width = canvas.shape[:2]
    unit = max(1.0, min(height, width) / 480.0)
    thickness = max(1, int(round(2 * unit)))
    font_scale = 0.5 * unit
    for face in faces:
        x, y, w, h = face.box
        color = color_for(face.label)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color, thickness, cv2.LINE_AA)
        text = f"{'#%d ' % face.id if show_id else ''}{face.label} {face.confidence:.0%}"
        (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, max(1, thickness // 2))
        top = y - th - baseline - 4 if y - th - baseline - 4 >= 0 else min(y + h, height - th - baseline - 4)
        left = max(0, min(x, width - tw - 6))  # a face at the right border keeps its whole tag in the frame
        cv2.rectangle(canvas, (left, top), (left + tw + 6, top + th + baseline + 4), color, cv2.FILLED)
        ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
        cv2.putText(canvas, text, (left + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, ink, max(1, thickness // 2), cv2.LINE_AA)
    return canvas


def draw_prob_bars(canvas: np.ndarray, faces: Sequence[FaceResult], *, width: int = 90) -> np.ndarray:
    """Draw, in place, a small bar chart of each face's probabilities beside its box."""
    height, frame_width = canvas.shape[:2]
    row = 11
    for face in faces:
        x, y, w, h = face.box
        left = x + w + 4 if x + w + 4 + width + 60 <= frame_width else max(0, x - width - 64)
        for k, (name, p) in enumerate(zip(face.labels, face.probs)):
            top = y + k * row
            if top + row > height:
                break
            cv2.rectangle(canvas, (left, top), (left + 58 + width, top + row - 1), (30, 30, 30), cv2.FILLED)
            cv2.putText(canvas, name[:8], (left + 2, top + row - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (235, 235, 235), 1, cv2.LINE_AA)
            cv2.rectangle(canvas, (left + 56, top + 1), (left + 56 + int(round(p * width)), top + row - 2), color_for(name), cv2.FILLED)
    return canvas


def draw_hud(canvas: np.ndarray, text: str) -> np.ndarray:
    """Draw, in place, a one-line heads-up display across the top of the frame."""
    scale = max(0.45, canvas.shape[0] / 900.0)
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    scale = min(scale, scale * (canvas.shape[1] - 12) / max(tw, 1))  # shrink to fit narrow frames
    (_, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(canvas, (0, 0), (canvas.shape[1], th + baseline + 8), (0, 0, 0), cv2.FILLED)
    cv2.putText(canvas, text, (6, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
