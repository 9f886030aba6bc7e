"""Graceful stops: Ctrl-C or SIGTERM ends a frame loop between frames, so outputs are finalized."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def graceful_stop() -> Iterator[threading.Event]:
    """While active, SIGINT and SIGTERM set the yielded event instead of raising.

    The frame loop checks the event after each frame and stops cleanly; a second signal raises
    KeyboardInterrupt for a user who really wants out. Outside the main thread signals cannot be
    caught, and the event is simply never set.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
