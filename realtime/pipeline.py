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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emolive.models.errors import InputError
from emolive.models.preprocess import Box, preprocess_faces, validate_image
from emolive.models.shipped import resolve_model_path

from .detectors import FaceDetector, create_detector
from .engines import InferenceEngine, create_engine
from .following import FaceFollower, SceneMonitor, gray_frame
from .records import Detection, FaceResult, Frame, FrameResult
from .schedule import DEFAULT_SCHEDULE, DetectionClock, DetectSchedule
from .smoothing import DEFAULT_DWELL, DEFAULT_HYSTERESIS, DEFAULT_SMOOTH, Smoother, create_smoother
from .sources import FrameSource, open_source
from .tracking import IoUTracker
from .workers import BackgroundIterator, PrefetchReader


def pipeline_engine(name: str, model_path: str | os.PathLike[str], *, threads: int = 0) -> InferenceEngine:
    """The CNN engine as a video pipeline runs it: it shares the cores with decoding, the detector and
    encoding, so ONNX Runtime's idle threads sleep between calls instead of busy-waiting."""
    return create_engine(name, model_path, threads=threads, spinning=False)


@dataclass(frozen=True)
class LocatedFaces:
    """The faces of one frame, found and identified but not yet classified.

    ``active_ids`` are the tracker's live ids after this frame (None: untracked, ids number the faces 1..N);
    ``cut`` says this frame starts a new shot (tracks ended, smoothing starts afresh); ``timings`` so far.
    """

    frame: Frame
    detections: tuple[Detection, ...]
    ids: tuple[int, ...]
    active_ids: tuple[int, ...] | None
    detected: bool
    cut: bool
    timings: dict[str, float] = field(compare=False)


STAGES: tuple[str, ...] = ("decode", "detect", "preprocess", "classify", "track")
"""Keys of ``FrameResult.timings`` (milliseconds); ``track`` includes following faces between detections and smoothing."""


class Recognizer:
    """Find faces and classify their emotions.

    ``model`` is a shipped model name (``default``) or a path to an ``.onnx`` file; ``detector`` one of
    auto (MediaPipe, Haar if MediaPipe cannot load), mediapipe, mediapipe-short, haar, none; ``engine`` auto or onnxruntime; ``threads`` the
    inference threads (0 = ONNX Runtime's choice); ``smooth`` auto, none, ema or lstm (per tracked face, on streams;
    auto = the CNN's LSTM head if it has one, else EMA); ``hysteresis`` (a probability margin) and ``dwell`` (frames)
    hold each track's displayed label against brief challengers; ``detect_every`` the detection schedule on video
    (``N`` or ``"N:M"``, see :mod:`emolive.realtime.schedule`).
    Use it as a context manager, or call ``close()``.
    """

    def __init__(self, model: str | os.PathLike[str] | None = "default", *, detector: str | FaceDetector = "auto",
                 engine: str | InferenceEngine = "auto", threads: int = 0, max_age: int = 15,
                 smooth: str | Smoother = DEFAULT_SMOOTH, smooth_alpha: float | None = None, hysteresis: float = DEFAULT_HYSTERESIS,
                 dwell: int = DEFAULT_DWELL,
                 detect_every: int | str | DetectSchedule = DEFAULT_SCHEDULE) -> None:
        clock = DetectionClock(DetectSchedule.parse(detect_every))  # a bad schedule fails before any model loads
        self._owns_engine = not isinstance(engine, InferenceEngine)
        self._owns_detector = not isinstance(detector, FaceDetector)
        self.engine = engine if isinstance(engine, InferenceEngine) else pipeline_engine(engine, resolve_model_path(model), threads=threads)
        try:
            self.info = self.engine.info
            self.labels = self.info.labels
            self.smoother = smooth if isinstance(smooth, Smoother) else create_smoother(
                smooth, alpha=smooth_alpha, margin=hysteresis, dwell=dwell, cnn_path=getattr(self.engine, "path", None), labels=self.labels)
            self.detector = detector if isinstance(detector, FaceDetector) else create_detector(detector)
        except BaseException:
            if self._owns_engine:
                self.engine.close()
            raise
        self.tracker = IoUTracker(max_age=max_age)
        self.clock = clock
        # One call now, so the first frame does not pay for ONNX Runtime's first-run allocations.
        size = self.info.preprocess.size
        self.engine.infer(np.zeros((1, 1, size, size), np.float32))
        self.follower = FaceFollower()
        self.scene = SceneMonitor()
        self._previous_gray: np.ndarray | None = None
        self._scores: dict[int, float] = {}
        self._streaming = False  # one stream at a time: tracks, smoothing and schedule belong to it

    # -- single images -------------------------------------------------------------------------
    def predict(self, image: np.ndarray) -> list[FaceResult]:
        """Faces in one image with their emotions; ids number the faces 1..N (no tracking)."""
        validate_image(image)
        detections = self._detect(image, {})
        probs, _ = self._infer(image, detections, {})
        return self._results(detections, probs, list(range(1, len(detections) + 1)))

    # -- streams -------------------------------------------------------------------------------
    def process(self, frame: Frame, *, track: bool = True) -> FrameResult:
        """Classify one frame of a stream; ``track`` keeps ids across calls (reset with ``reset()``).

        With tracking on, the detector runs on the ``detect_every`` schedule; in between, the faces in view
        are followed with optical flow. It runs at once when a followed face is lost, when the frame
        changes a lot, and after a shot cut (which also starts new tracks).
        """
        self._refuse_while_streaming("process")
        return self._classify(self._locate(frame, track))

    def _refuse_while_streaming(self, what: str) -> None:
        if self._streaming:
            raise InputError(f"this Recognizer is running a stream; {what}() would mix its tracks and smoothing with "
                             "that stream's: finish or close the stream first, or use a second Recognizer")

    def stream(self, source: str | int | os.PathLike[str] | FrameSource | Iterable[Frame], *, prefetch: bool = True,
               track: bool | None = None) -> Iterator[FrameResult]:
        """Results for every frame of ``source`` (a path, camera index, URL, FrameSource or frames).

        Frames of a video or camera are tracked; images of a folder are independent (ids restart);
        ``track`` overrides that choice (False: every frame is an unrelated still image).
        Files are decoded on a background thread a few frames ahead (``prefetch``), and their faces are
        located (detector, optical flow, tracker) on a second one while this thread classifies and smooths
        the frames before: the results are the same as frame-by-frame ``process``, every frame is kept,
        in order. Live sources run frame by frame, so the newest frame is always the next one.
        ``timings["decode"]`` is the decoding time of the frame.
        """
        self._refuse_while_streaming("stream")
        if isinstance(source, (str, int, Path)):
            source = open_source(source)
        if track is None:
            track = not (isinstance(source, FrameSource) and source.info.kind in ("image", "folder"))
        reader = source if isinstance(source, PrefetchReader) else None
        if prefetch and isinstance(source, FrameSource) and not source.info.is_live:
            reader = PrefetchReader(source)
        self.reset()
        located = self._located(reader if reader is not None else source, track)
        if reader is not None:
            located = BackgroundIterator(located, depth=4, name="emolive-locate")
        iterator = iter(located)
        self._streaming = True
        try:
            for faces in iterator:
                yield self._classify(faces)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            self._streaming = False

    def _located(self, frames: Iterable[Frame], track: bool) -> Iterator[LocatedFaces]:
        """The faces of every frame, located in order (the first half of ``stream``)."""
        iterator = iter(frames)
        try:
            while True:
                tic = time.perf_counter()
                try:
                    frame = next(iterator)
                except StopIteration:
                    return
                decode_ms = (time.perf_counter() - tic) * 1000.0
                if isinstance(frames, PrefetchReader):
                    decode_ms = frames.decode_ms.pop(frame.index, decode_ms)
                faces = self._locate(frame, track)
                faces.timings["decode"] = decode_ms
                yield faces
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _locate(self, frame: Frame, track: bool) -> LocatedFaces:
        """Detect or follow the faces of one frame and give them track ids (no classification)."""
        timings: dict[str, float] = {}
        image = frame.image
        validate_image(image)
        if not track:
            detections = self._detect(image, timings)
            return LocatedFaces(frame, tuple(detections), tuple(range(1, len(detections) + 1)), None, detected=True, cut=False,
                                timings=timings)

        tic = time.perf_counter()
        cut = forced = False
        detections: list[Detection] | None = None
        visible: list[tuple[int, Box]] = []
        if not self.detector.whole_image:
            gray = gray_frame(image)
            changed, cut = self.scene.update(gray)
            if cut:
                self.tracker.end_tracks()
                self._scores.clear()
            visible = self.tracker.visible()
            comparable = self._previous_gray is not None and self._previous_gray.shape == gray.shape
            forced = changed or not comparable
            if not (forced or self.clock.due):
                if visible:
                    followed = self.follower.follow(self._previous_gray, gray, [box for _, box in visible])
                    if all(f.quality >= self.follower.min_quality for f in followed):
                        detections = [Detection(f.box, self._scores.get(track_id, 0.0)) for (track_id, _), f in zip(visible, followed)]
                    else:
                        forced = True  # a face was lost: find it again now
                elif not self.tracker.active_ids:
                    detections = []  # nobody in view for a while: look again when the schedule says so
            self._previous_gray = gray
        follow_ms = (time.perf_counter() - tic) * 1000.0
        detected = detections is None
        if detections is None:
            detections = self._detect(image, timings)
        else:
            timings["detect"] = 0.0
            self.clock.followed()
        tic = time.perf_counter()
        ids = self.tracker.update([d.box for d in detections])
        if detected:
            alive = set(self.tracker.active_ids)
            self._scores = {i: s for i, s in self._scores.items() if i in alive}
            self._scores.update({i: d.score for i, d in zip(ids, detections)})
            self.clock.detected(confirmed=not forced and set(ids) == {track_id for track_id, _ in visible})
        timings["track"] = follow_ms + (time.perf_counter() - tic) * 1000.0
        return LocatedFaces(frame, tuple(detections), tuple(ids), tuple(self.tracker.active_ids), detected=detected, cut=cut,
                            timings=timings)

    def _classify(self, located: LocatedFaces) -> FrameResult:
        """Classify and (for tracked faces) smooth the located faces of one frame (the second half of ``stream``)."""
        timings = located.timings
        detections = list(located.detections)
        probs, features = self._infer(located.frame.image, detections, timings)
        if located.active_ids is None:
            timings["track"] = 0.0
            return FrameResult(frame=located.frame, faces=tuple(self._results(detections, probs, list(located.ids))), timings=timings)
        tic = time.perf_counter()
        if located.cut:
            self.smoother.reset()
        raw = None
        ids = list(located.ids)
        smoothed = self.smoother.update(ids, probs, located.active_ids, features=features)
        held = self.smoother.held_labels(ids)
        if smoothed is not probs:
            probs, raw = smoothed, probs
        timings["track"] += (time.perf_counter() - tic) * 1000.0
        return FrameResult(frame=located.frame, faces=tuple(self._results(detections, probs, ids, raw, held)), timings=timings,
                           detected=located.detected)

    def reset(self) -> None:
        """Forget tracks, smoothing state and the detection schedule (call between unrelated videos)."""
        self.tracker.reset()
        self.smoother.reset()
        self.scene.reset()
        self._previous_gray = None
        self.clock.reset()
        self._scores.clear()

    # -- internals -----------------------------------------------------------------------------
    def _detect(self, image: np.ndarray, timings: dict[str, float]) -> list[Detection]:
        tic = time.perf_counter()
        detections = self.detector.detect(image)
        timings["detect"] = (time.perf_counter() - tic) * 1000.0
        return detections

    def _infer(self, image: np.ndarray, detections: list[Detection], timings: dict[str, float]) -> tuple[np.ndarray, np.ndarray | None]:
        """Preprocess every face of the frame and classify them in one batched call."""
        tic = time.perf_counter()
        boxes = None if self.detector.whole_image else [d.box for d in detections]
        batch = preprocess_faces(image, boxes, self.info.preprocess) if detections else np.empty((0, 1, 1, 1), np.float32)
        toc = time.perf_counter()
        if detections:
            probs, features = self.engine.infer(batch)
        else:
            probs, features = np.empty((0, self.info.num_classes), np.float32), None
        timings.update(preprocess=(toc - tic) * 1000.0, classify=(time.perf_counter() - toc) * 1000.0)
        return probs, features

    def _results(self, detections: list[Detection], probs: np.ndarray, ids: list[int], raw: np.ndarray | None = None,
                 held: np.ndarray | None = None) -> list[FaceResult]:
        return [FaceResult(id=i, box=d.box, detection_score=d.score, labels=self.labels, probs=tuple(float(p) for p in row),
                           raw_probs=None if raw is None else tuple(float(p) for p in raw[k]),
                           held_label=None if held is None else self.labels[int(held[k])])
                for k, (i, d, row) in enumerate(zip(ids, detections, probs))]

    def close(self) -> None:
        """Release the detector and engine this recognizer built (ones passed in stay open for their owner)."""
        if self._owns_detector:
            self.detector.close()
        if self._owns_engine:
            self.engine.close()

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
