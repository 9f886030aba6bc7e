"""The recognizer: detector -> shared preprocessing -> batched CNN -> tracker, with per-stage timings.

>>> with Recognizer() as recognizer:
...     faces = recognizer.predict(image)               # one image -> list[FaceResult]
...     for result in recognizer.stream("video.mp4"):   # a source -> FrameResult per frame
...         ...
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from emolive.models.preprocess import preprocess_faces, validate_image
from emolive.models.shipped import resolve_model_path

from .detectors import FaceDetector, create_detector
from .engines import InferenceEngine, create_engine
from .records import Detection, FaceResult, Frame, FrameResult
from .smoothing import Smoother, create_smoother
from .sources import FrameSource, open_source
from .tracking import IoUTracker

STAGES: tuple[str, ...] = ("decode", "detect", "preprocess", "classify", "track")
"""Keys of ``FrameResult.timings`` (milliseconds); ``track`` includes smoothing."""


class Recognizer:
    """Find faces and classify their emotions.

    ``model`` is a shipped model name (``default``) or a path to an ``.onnx`` file; ``detector`` one of
    auto (MediaPipe, Haar if MediaPipe cannot load), mediapipe, mediapipe-short, haar, none; ``engine`` auto or onnxruntime; ``threads`` the
    inference threads (0 = ONNX Runtime's choice); ``smooth`` none or ema (per tracked face, on streams).
    Use it as a context manager, or call ``close()``.
    """

    def __init__(self, model: str | os.PathLike[str] | None = "default", *, detector: str | FaceDetector = "auto",
                 engine: str | InferenceEngine = "auto", threads: int = 0, max_age: int = 15,
                 smooth: str | Smoother = "none", smooth_alpha: float = 0.7) -> None:
        self.engine = engine if isinstance(engine, InferenceEngine) else create_engine(engine, resolve_model_path(model), threads=threads)
        try:
            self.detector = detector if isinstance(detector, FaceDetector) else create_detector(detector)
        except Exception:
            self.engine.close()
            raise
        self.info = self.engine.info
        self.labels = self.info.labels
        self.tracker = IoUTracker(max_age=max_age)
        self.smoother = smooth if isinstance(smooth, Smoother) else create_smoother(smooth, alpha=smooth_alpha)

    # -- single images -------------------------------------------------------------------------
    def predict(self, image: np.ndarray) -> list[FaceResult]:
        """Faces in one image with their emotions; ids number the faces 1..N (no tracking)."""
        detections, probs = self._classify(image, {})
        return self._results(detections, probs, list(range(1, len(detections) + 1)))

    # -- streams -------------------------------------------------------------------------------
    def process(self, frame: Frame, *, track: bool = True) -> FrameResult:
        """Classify one frame of a stream; ``track`` keeps ids across calls (reset with ``reset()``)."""
        timings: dict[str, float] = {}
        detections, probs = self._classify(frame.image, timings)
        tic = time.perf_counter()
        raw = None
        if track:
            ids = self.tracker.update([d.box for d in detections])
            smoothed = self.smoother.update(ids, probs, self.tracker.active_ids)
            if smoothed is not probs:
                probs, raw = smoothed, probs
        else:
            ids = list(range(1, len(detections) + 1))
        timings["track"] = (time.perf_counter() - tic) * 1000.0
        return FrameResult(frame=frame, faces=tuple(self._results(detections, probs, ids, raw)), timings=timings)

    def stream(self, source: str | int | os.PathLike[str] | FrameSource | Iterable[Frame]) -> Iterator[FrameResult]:
        """Results for every frame of ``source`` (a path, camera index, URL, FrameSource or frames).

        Frames of a video or camera are tracked; images of a folder are independent (ids restart).
        """
        if isinstance(source, (str, int, Path)):
            source = open_source(source)
        track = not (isinstance(source, FrameSource) and source.info.kind in ("image", "folder"))
        self.reset()
        iterator = iter(source)
        try:
            while True:
                tic = time.perf_counter()
                try:
                    frame = next(iterator)
                except StopIteration:
                    return
                decode_ms = (time.perf_counter() - tic) * 1000.0
                result = self.process(frame, track=track)
                result.timings["decode"] = decode_ms
                yield result
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def reset(self) -> None:
        """Forget tracks and smoothing state (call between unrelated videos)."""
        self.tracker.reset()
        self.smoother.reset()

    # -- internals -----------------------------------------------------------------------------
    def _classify(self, image: np.ndarray, timings: dict[str, float]) -> tuple[list[Detection], np.ndarray]:
        validate_image(image)
        tic = time.perf_counter()
        detections = self.detector.detect(image)
        toc = time.perf_counter()
        boxes = None if self.detector.whole_image else [d.box for d in detections]
        batch = preprocess_faces(image, boxes, self.info.preprocess) if detections else np.empty((0, 1, 1, 1), np.float32)
        tac = time.perf_counter()
        probs = self.engine.classify(batch)
        tuc = time.perf_counter()
        timings.update(detect=(toc - tic) * 1000.0, preprocess=(tac - toc) * 1000.0, classify=(tuc - tac) * 1000.0)
        return detections, probs

    def _results(self, detections: list[Detection], probs: np.ndarray, ids: list[int], raw: np.ndarray | None = None) -> list[FaceResult]:
        return [FaceResult(id=i, box=d.box, detection_score=d.score, labels=self.labels, probs=tuple(float(p) for p in row),
                           raw_probs=None if raw is None else tuple(float(p) for p in raw[k]))
                for k, (i, d, row) in enumerate(zip(ids, detections, probs))]

    def close(self) -> None:
        self.detector.close()
        self.engine.close()

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
