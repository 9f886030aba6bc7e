"""Face detectors: MediaPipe BlazeFace (default), OpenCV Haar cascade (fallback), and ``none``.

Each detector is a context manager with one method, ``detect(image) -> list[Detection]``, taking a
BGR, BGRA or gray image of any size. Detectors are built once and reused for every frame.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from emolive.models.errors import DependencyError, InputError
from emolive.models.preprocess import to_gray_uint8, validate_image

from .records import Detection

DETECTORS: tuple[str, ...] = ("auto", "mediapipe", "mediapipe-short", "haar", "none")

log = logging.getLogger(__name__)


class FaceDetector(ABC):
    """Find faces in one image. ``whole_image`` detectors mean "the image is the face crop"."""

    name: str = ""
    whole_image: bool = False

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image`` as pixel boxes, most confident first."""

    def close(self) -> None:
        """Release native resources; the detector cannot be used afterwards."""

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence C++ log lines (TFLite/absl) written straight to fd 2, unless debug logging is on."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink ``image`` so its longer side is at most ``max_side``; returns it and the scale applied."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _clip_box(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Clip a box to the image; None if nothing of it is inside."""
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(width, int(round(x + w))), min(height, int(round(y + h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1 - x0, y1 - y0


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Any supported image (gray/BGR/BGRA, 8/16-bit/float) as 3-channel uint8 BGR."""
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return image
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.dtype != np.uint8 and image.ndim == 3 and image.shape[2] in (3, 4):
        validate_image(image)
        image = image[:, :, :3]
        if image.dtype == np.uint16:
            return np.ascontiguousarray((image >> 8).astype(np.uint8))
        return np.ascontiguousarray((np.clip(np.nan_to_num(image), 0, 1) * 255 + 0.5).astype(np.uint8))
    return cv2.cvtColor(to_gray_uint8(image), cv2.COLOR_GRAY2BGR)


class MediaPipeDetector(FaceDetector):
    """MediaPipe BlazeFace. ``model_range='full'`` finds faces up to ~5 m away, ``'short'`` up to ~2 m (faster).

    Frames larger than ``max_side`` are shrunk first: BlazeFace itself sees only 128 or 192 px, so a
    640 px frame loses nothing and skips converting and copying a full-size one.
    """

    def __init__(self, *, model_range: str = "full", min_score: float = 0.5, max_side: int = 640) -> None:
        if model_range not in ("full", "short"):
            raise ValueError(f"model_range must be 'full' or 'short', got {model_range!r}")
        os.environ.setdefault("GLOG_minloglevel", "2")
        try:
            from mediapipe.python.solutions import face_detection
        except ImportError as exc:
            raise DependencyError(f"the MediaPipe detector needs the 'mediapipe' package ({exc}); pip install mediapipe==0.10.21, or use --detector haar") from None
        self.name = "mediapipe" if model_range == "full" else "mediapipe-short"
        self.max_side = max_side
        with quiet_native_stderr():
            self._detector = face_detection.FaceDetection(model_selection=1 if model_range == "full" else 0, min_detection_confidence=min_score)
            # The first call builds the TFLite interpreter, which logs; run it here on a blank frame.
            self._detector.process(np.zeros((64, 64, 3), dtype=np.uint8))

    def detect(self, image: np.ndarray) -> list[Detection]:
        bgr = to_bgr(image)
        height, width = bgr.shape[:2]
        small, _ = _downscale(bgr, self.max_side)
        result = self._detector.process(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        found: list[Detection] = []
        for detection in result.detections or ():
            rel = detection.location_data.relative_bounding_box
            box = _clip_box(rel.xmin * width, rel.ymin * height, rel.width * width, rel.height * height, width, height)
            if box is not None:
                found.append(Detection(box=box, score=float(detection.score[0])))
        return sorted(found, key=lambda d: -d.score)

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None


class HaarDetector(FaceDetector):
    """OpenCV's frontal-face Haar cascade, run on a frame shrunk to ``max_side``."""

    name = "haar"

    def __init__(self, *, max_side: int = 640, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24) -> None:
        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise DependencyError(f"OpenCV's Haar cascade is missing ({path}); install opencv-contrib-python 4.x (5.x ships no cascades)")
        self.max_side, self.scale_factor, self.min_neighbors, self.min_size = max_side, scale_factor, min_neighbors, min_size

    def detect(self, image: np.ndarray) -> list[Detection]:
        gray = to_gray_uint8(image)
        height, width = gray.shape
        small, scale = _downscale(gray, self.max_side)
        boxes, _, weights = self._cascade.detectMultiScale3(
            cv2.equalizeHist(small), scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True)
        found = []
        for (x, y, w, h), weight in zip(boxes, np.ravel(weights) if len(boxes) else ()):
            box = _clip_box(x / scale, y / scale, w / scale, h / scale, width, height)
            if box is not None:
                # Cascade weights are unbounded; squash to (0, 1) so scores read like probabilities.
                found.append(Detection(box=box, score=float(1.0 / (1.0 + np.exp(-float(weight))))))
        return sorted(found, key=lambda d: -d.score)


class WholeImageDetector(FaceDetector):
    """``--detector none``: the whole image is one face crop (pre-cropped faces, FER2013 images)."""

    name = "none"
    whole_image = True

    def detect(self, image: np.ndarray) -> list[Detection]:
        height, width = image.shape[:2]
        if height == 0 or width == 0:
            return []
        return [Detection(box=(0, 0, width, height), score=1.0)]


def create_detector(name: str = "auto", **kwargs: Any) -> FaceDetector:
    """Build a detector by name: auto (MediaPipe, else Haar), mediapipe (full range), mediapipe-short, haar or none."""
    if name == "auto":
        try:
            return MediaPipeDetector(model_range="full", **kwargs)
        except DependencyError as exc:
            log.warning("%s; falling back to the Haar detector", exc)
            return HaarDetector()
    if name == "mediapipe":
        return MediaPipeDetector(model_range="full", **kwargs)
    if name == "mediapipe-short":
        return MediaPipeDetector(model_range="short", **kwargs)
    if name == "haar":
        return HaarDetector(**kwargs)
    if name == "none":
        return WholeImageDetector()
    raise InputError(f"unknown detector '{name}'; choose one of {', '.join(DETECTORS)}")
