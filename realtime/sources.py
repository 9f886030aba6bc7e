"""Frame sources: camera index, stream URL, video file, image file, folder of images.

Every source is a generator of :class:`Frame` that releases what it opened in ``finally``, so a
consumer that stops early (Ctrl-C, window closed, exception) never leaks a camera or file handle.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emolive.models.errors import InputError, SourceError

from .records import Frame

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True)
class SourceInfo:
    """What a source is before reading it: kind (camera, stream, video, image, folder) and its format."""

    kind: str
    location: str
    fps: float
    frame_count: int | None
    width: int
    height: int

    @property
    def is_live(self) -> bool:
        return self.kind in ("camera", "stream")


class FrameSource:
    """A probed source. Iterate it (once or many times) for frames; ``info`` describes it."""

    def __init__(self, info: SourceInfo, paths: tuple[Path, ...] = ()) -> None:
        self.info = info
        self.paths = paths

    def __iter__(self) -> Iterator[Frame]:
        if self.info.kind in ("image", "folder"):
            return iter_images(self.paths)
        return iter_capture(self.info)


def open_source(spec: str | int | os.PathLike[str]) -> FrameSource:
    """Probe ``spec``: an int (or a digit string that names no file) is a camera index, ``scheme://`` a stream, else a path."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit() and not Path(spec).exists()):
        return _probe_capture("camera", int(spec))
    text = os.fspath(spec)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        return _probe_capture("stream", text)
    path = Path(text)
    if not path.exists():
        raise InputError(f"input {path} does not exist; check the path (quote it if it has spaces)")
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise InputError(f"folder {path} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); pass a folder of images, an image or a video")
        first = _first_readable(images)
        return FrameSource(SourceInfo("folder", str(path), 0.0, len(images), first.shape[1], first.shape[0]), tuple(images))
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        image = read_image(path)
        return FrameSource(SourceInfo("image", str(path), 0.0, 1, image.shape[1], image.shape[0]), (path,))
    if suffix in VIDEO_SUFFIXES:
        if not video_io_accepts(text):
            raise InputError(f"video path {text!r} is not valid UTF-8, which the video decoder cannot open; rename the file")
        return _probe_capture("video", str(path))
    raise InputError(f"unsupported input type '{suffix or path.name}'; pass a video ({', '.join(sorted(VIDEO_SUFFIXES))}), an image or a folder")


def video_io_accepts(text: str) -> bool:
    """Whether a path can be handed to OpenCV's video reader or writer (they need UTF-8; other bytes crash them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_readable(images: list[Path]) -> np.ndarray:
    """The first image of a folder that decodes (it gives the folder's size); iter_images warns about the others."""
    for path in images:
        try:
            return read_image(path)
        except InputError:
            continue
    raise InputError(f"no image in folder {images[0].parent} can be read (all {len(images)} are corrupt or unsupported); re-save them as JPEG or PNG")


def _natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural order (frame2 before frame10)."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)


def read_image(path: Path) -> np.ndarray:
    """Read an image as stored (gray, BGR or BGRA; 8 or 16 bit); works with any file name encoding."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc.strerror}); check the file permissions") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None or image.size == 0:
        raise InputError(f"{path} is not a readable image (corrupt or unsupported format); re-save it as JPEG or PNG")
    return image


def iter_images(paths: tuple[Path, ...]) -> Iterator[Frame]:
    """Frames from image files; an unreadable file in a folder is skipped with a warning."""
    for index, path in enumerate(paths):
        try:
            image = read_image(path)
        except InputError as exc:
            if len(paths) == 1:
                raise
            log.warning("skipping %s", exc)
            continue
        yield Frame(index=index, time=0.0, source=str(path), image=image)


def _open_capture(location: str | int) -> cv2.VideoCapture | None:
    capture = cv2.VideoCapture(location)
    if not capture.isOpened():
        capture.release()
        return None
    # Phone videos store sideways pixels plus a rotation: frames (and the size read after this) come upright.
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return capture


def _probe_capture(kind: str, location: str | int) -> FrameSource:
    capture = _open_capture(location)
    if capture is None:
        if kind == "camera":
            available = [i for i in range(6) if i != location and _camera_opens(i)]
            hint = f"cameras that open: {', '.join(map(str, available))}" if available else "no camera opens on this machine"
            raise SourceError(f"camera {location} cannot be opened ({hint}); pass another --camera index or a video file")
        if kind == "stream":
            raise SourceError(f"stream {location} cannot be opened; check the URL and that the server is reachable")
        raise InputError(f"{location} cannot be opened as a video (corrupt or unsupported codec); re-encode it to H.264 MP4")
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if kind != "camera" else 0
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()
    if kind == "video" and (width <= 0 or height <= 0):
        raise InputError(f"{location} has no decodable video frames; re-encode it to H.264 MP4")
    fps = fps if 0 < fps < 1000 else 30.0
    return FrameSource(SourceInfo(kind, str(location), fps, count if count > 0 else None, width, height))


def _camera_opens(index: int) -> bool:
    capture = _open_capture(index)
    if capture is None:
        return False
    capture.release()
    return True


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a camera or stream that stops delivering frames is retried: bounded, with growing waits."""

    attempts: int = 5
    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 4.0

    def delays(self) -> list[float]:
        return [min(self.max_delay, self.first_delay * self.factor ** k) for k in range(self.attempts)]


def _reconnect(info: SourceInfo, location: str | int, policy: ReconnectPolicy):
    """Reopen a live source until it delivers a frame again; returns (capture, image) or (None, None)."""
    for attempt, delay in enumerate(policy.delays(), 1):
        log.warning("%s %s stopped delivering frames; reconnecting in %.1f s (attempt %d of %d)",
                    info.kind, info.location, delay, attempt, policy.attempts)
        time.sleep(delay)
        capture = _open_capture(location)
        if capture is None:
            continue
        ok, image = capture.read()
        if ok and image is not None:
            return capture, image
        capture.release()
    return None, None


def iter_capture(info: SourceInfo, policy: ReconnectPolicy = ReconnectPolicy()) -> Iterator[Frame]:
    """Frames from a camera, stream or video file, in order; the capture is released in ``finally``.

    A file's frame time is its position (index / fps); a camera's or stream's is seconds since start.
    A file that ends early (truncated) stops at its last good frame with a warning. A camera or
    stream that stops delivering is reopened with backoff (``policy``); if it does not come back, a
    SourceError ends the run after every frame so far was delivered.
    """
    location: str | int = int(info.location) if info.kind == "camera" else info.location
    capture = _open_capture(location)
    if capture is None:
        raise SourceError(f"{info.kind} {info.location} cannot be opened; check it is still connected or present")
    try:
        index, start = 0, time.perf_counter()
        while True:
            ok, image = capture.read()
            if not ok or image is None:
                finite = info.frame_count is not None and index >= info.frame_count
                if not info.is_live or finite:
                    if info.kind == "video" and info.frame_count and index < info.frame_count:
                        log.warning("%s: video ends after %d of %d frames (truncated or damaged); outputs stop at the last good frame",
                                    info.location, index, info.frame_count)
                    break
                capture.release()
                capture, image = _reconnect(info, location, policy)
                if capture is None:
                    raise SourceError(f"{info.kind} {info.location} stopped delivering frames and did not come back after "
                                      f"{policy.attempts} reconnect attempts; check the connection and start again")
            stamp = time.perf_counter() - start if info.is_live else index / info.fps
            yield Frame(index=index, time=stamp, source=info.location, image=image)
            index += 1
    finally:
        if capture is not None:
            capture.release()


class LatestFrameReader:
    """Read a live source on a background thread and hand out only the newest frame.

    A slow consumer never falls behind a camera: frames it had no time for are skipped and counted in
    ``dropped``. Iterating starts the thread; stopping early (break, exception) stops it and closes
    the underlying source.
    """

    def __init__(self, frames: Iterable[Frame]) -> None:
        self._frames = iter(frames)
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._done = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emolive-capture", daemon=True)
        self.dropped = 0
        self.read = 0
        self.captured_at: dict[int, float] = {}
        """perf_counter() when each frame arrived from the source, by frame index (pop it to measure latency)."""

    def _run(self) -> None:
        try:
            for frame in self._frames:
                arrived = time.perf_counter()
                with self._cond:
                    self.read += 1
                    if self._latest is not None:
                        self.dropped += 1
                        self.captured_at.pop(self._latest.index, None)
                    self.captured_at[frame.index] = arrived
                    self._latest = frame
                    self._cond.notify()
                if self._stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            self._error = exc
        finally:
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()
            with self._cond:
                self._done = True
                self._cond.notify()

    def __iter__(self) -> Iterator[Frame]:
        self._thread.start()
        try:
            while True:
                with self._cond:
                    while self._latest is None and not self._done:
                        self._cond.wait(0.1)
                    if self._latest is None:
                        if self._error is not None:
                            raise self._error
                        return
                    frame, self._latest = self._latest, None
                yield frame
        finally:
            self._stop.set()
            self._thread.join(timeout=5)
