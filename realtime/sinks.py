"""Where results go: annotated video, annotated images, JSONL records, a window.

Sinks are context managers. Files other than JSONL are written under a temporary name in the target
folder and renamed when complete, so an interrupted run never leaves a half file under the final
name; the annotated video is finalized (playable up to the last frame) on Ctrl-C too. JSONL lines
are flushed as they are written.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from emolive.models.errors import OutputError

from .records import FrameResult
from .sources import video_io_accepts

_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}
VIDEO_OUTPUT_SUFFIXES = frozenset(_FOURCC)
IMAGE_OUTPUT_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


def make_folder(folder: str | os.PathLike[str], option: str = "-o") -> Path:
    """Create the output folder ``folder`` if missing; fail clearly, naming ``option``, if it cannot be written."""
    folder = Path(folder)
    blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise OutputError(f"cannot create output folder {folder}: {blocking} is a file; choose another location with {option}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder} ({exc.strerror}); choose a writable location with {option}") from None
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder {folder} is not writable; choose a writable location with {option}")
    return folder


def prepare_output(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """Create the folder of the output file ``path`` if missing; fail clearly, naming ``option``, if it cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"output {path} is a folder; name a file there (e.g. {path / ('out' + (path.suffix or '.jsonl'))}) with {option}")
    make_folder(path.parent, option)
    return path


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.stem}.part{os.getpid()}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], option: str = "-o") -> Iterator[Path]:
    """A temporary name beside ``path`` to write to: renamed to ``path`` when the block ends, removed if it fails.

    An OSError (no space, a folder in the way) becomes a one-line OutputError naming ``option``.
    """
    path = Path(path)
    tmp = _temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {path} ({exc.strerror}); choose a writable location with {option}") from None
        raise


class VideoSink:
    """Write BGR frames to a video file at a fixed fps and size (frames of another size are resized)."""

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int]) -> None:
        self.path = prepare_output(Path(path))
        suffix = self.path.suffix.lower()
        if suffix not in _FOURCC:
            raise OutputError(f"cannot write video '{self.path.name}'; use one of {', '.join(sorted(_FOURCC))}")
        if not video_io_accepts(str(self.path)):
            raise OutputError(f"output path {str(self.path)!r} is not valid UTF-8, which the video encoder cannot write; choose another name with -o")
        self.fps, self.size = fps, size
        self._tmp = _temp_name(self.path)
        self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*_FOURCC[suffix]), fps, size)
        if not self._writer.isOpened():
            raise OutputError(f"cannot open a video writer for {self.path}; check the folder is writable and the format is supported")
        self.frames_written = 0

    def write(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames_written += 1

    def close(self, keep: bool = True) -> None:
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        if keep and self.frames_written:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        # A finished run and an interrupted one (Ctrl-C) keep a playable file; a crash does not.
        self.close(keep=exc_type is None or issubclass(exc_type, KeyboardInterrupt))


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode and write an image atomically; any file name encoding works."""
    ok, encoded = cv2.imencode(path.suffix.lower() or ".jpg", image)
    if not ok:
        raise OutputError(f"cannot encode an image as '{path.suffix}'; use .jpg or .png")
    prepare_output(path)
    with atomic_path(path) as tmp:
        encoded.tofile(tmp)


class JsonlSink:
    """One JSON object per frame, one line each, flushed as written."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = prepare_output(path, "--jsonl")
        try:
            self._handle = open(self.path, "w", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {self.path} ({exc.strerror}); choose a writable location with --jsonl") from None
        self.lines = 0

    def write(self, result: FrameResult) -> None:
        line = json.dumps(result.to_dict(), ensure_ascii=False)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a file name that is not valid UTF-8: keep it, \u-escaped
            line = json.dumps(result.to_dict())
        try:
            self._handle.write(line + "\n")
            self._handle.flush()
        except OSError as exc:
            raise self._write_error(exc) from None
        self.lines += 1

    def close(self) -> None:
        if self._handle.closed:
            return
        try:
            self._handle.close()
        except OSError as exc:  # the buffered tail could not be written (the error of write() said why)
            raise self._write_error(exc) from None

    def _write_error(self, exc: OSError) -> OutputError:
        return OutputError(f"cannot write {self.path} ({exc.strerror}); free disk space or choose another location with --jsonl")

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def display_available() -> bool:
    """Whether an on-screen window can be opened (X11/Wayland on Linux; always elsewhere)."""
    if os.name != "posix" or os.uname().sysname == "Darwin":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class WindowSink:
    """An OpenCV window. ``show`` returns the key pressed (or -1); the window closes on exit."""

    def __init__(self, title: str = "emolive") -> None:
        if not display_available():
            raise OutputError("no display to open a window on (DISPLAY is unset); run 'emo-live annotate' to write files instead")
        self.title = title
        cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)

    def show(self, image: np.ndarray, wait_ms: int = 1) -> int:
        cv2.imshow(self.title, image)
        return cv2.waitKey(wait_ms) & 0xFF

    @property
    def closed_by_user(self) -> bool:
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return True

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass

    def __enter__(self) -> WindowSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
