"""Pipeline threads for files: decode ahead of recognition, render and encode behind it.

OpenCV's decoder and encoder, MediaPipe and ONNX Runtime release the GIL, so on a multi-core machine
decoding the next frame, locating the faces of this one, classifying the previous one and encoding the
one before overlap. Every queue is bounded: every frame is kept and in order (files are never
dropped), and memory stays flat when one side is slower.
An error on a worker thread is raised in the caller at its next call.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from .records import Frame

T = TypeVar("T")
_END = object()


class BackgroundIterator(Generic[T]):
    """Run an iterable on a background thread, up to ``depth`` items ahead; yields every item in order.

    An exception raised while producing an item is raised in the consumer at that item. Leaving the
    loop early (``break``, an error, closing the generator) stops the thread and closes ``items``.
    """

    def __init__(self, items: Iterable[T], depth: int = 8, name: str = "emolive-background") -> None:
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _produced(self, item: T, seconds: float) -> None:
        """Called on the worker thread for every item with the time it took to produce it."""

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        iterator = iter(self._items)
        try:
            while not self._stop.is_set():
                tic = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                self._produced(item, time.perf_counter() - tic)
                if not self._put(item):
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            self._put(_END)

    def __iter__(self) -> Iterator[T]:
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()
            self._thread.join(timeout=5)


class PrefetchReader(BackgroundIterator[Frame]):
    """Decode frames on a background thread, up to ``depth`` ahead; yields every frame in order.

    ``decode_ms[frame.index]`` holds how long decoding that frame took on the reader thread (popped by
    the consumer that reports it).
    """

    def __init__(self, frames: Iterable[Frame], depth: int = 8) -> None:
        super().__init__(frames, depth, name="emolive-decode")
        self.decode_ms: dict[int, float] = {}

    def _produced(self, item: Frame, seconds: float) -> None:
        self.decode_ms[item.index] = seconds * 1000.0


class BackgroundWriter(Generic[T]):
    """Run ``handle(item)`` for each submitted item on one worker thread, in submission order.

    ``submit`` blocks while ``depth`` items wait (back-pressure). ``handle`` returns a dict of stage
    milliseconds that is added to ``stage_ms``. Use as a context manager: leaving it waits for the queue
    to drain and re-raises the first error of the worker.
    """

    def __init__(self, handle: Callable[[T], dict[str, float]], depth: int = 8) -> None:
        self._handle = handle
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._finished = threading.Event()  # not Thread.join: before Python 3.13 a Ctrl-C inside join() can mark a live thread stopped
        self._thread = threading.Thread(target=self._run, name="emolive-write", daemon=True)
        self._thread.start()
        self.stage_ms: list[dict[str, float]] = []

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                if self._error is not None:
                    continue  # drain without work after a failure
                try:
                    self.stage_ms.append(self._handle(item))
                except BaseException as exc:
                    self._error = exc
        finally:
            self._finished.set()

    def submit(self, item: T) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self) -> None:
        """Wait for every submitted item to be handled; raise the worker's error if there was one.

        A Ctrl-C while waiting does not cut the wait short (at most ``depth`` items are left, and the
        caller closes the files they write to right after): it is raised once the worker is done.
        """
        interrupted, ended = False, self._finished.is_set()
        while not self._finished.is_set():
            try:
                if not ended:
                    self._queue.put(_END)
                    ended = True
                self._finished.wait()
            except KeyboardInterrupt:
                interrupted = True
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if interrupted:
            raise KeyboardInterrupt

    def __enter__(self) -> BackgroundWriter[T]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        # Already failing: still finish the queue so finished frames are kept, but keep the first error.
        try:
            self.close()
        except BaseException:
            pass
