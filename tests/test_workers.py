"""The background writer annotate renders and encodes on: order, errors, and Ctrl-C while it drains."""

import os
import signal
import threading
import time

import pytest

from emolive.realtime.workers import BackgroundWriter


def _slow_handler(done: list[int], seconds: float = 0.0):
    def handle(item: int) -> dict[str, float]:
        time.sleep(seconds)
        done.append(item)
        return {"write": seconds * 1000.0}
    return handle


def test_items_are_handled_in_order_and_the_first_error_is_raised_on_close():
    done: list[int] = []
    with BackgroundWriter(_slow_handler(done)) as writer:
        for item in range(20):
            writer.submit(item)
    assert done == list(range(20)) and len(writer.stage_ms) == 20

    def fail(item: int) -> dict[str, float]:
        raise OSError(f"disk full at {item}")

    writer = BackgroundWriter(fail)
    writer.submit(1)
    with pytest.raises(OSError, match="disk full at 1"):
        writer.close()


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread only")
def test_ctrl_c_while_closing_still_finishes_the_queued_items():
    """A second Ctrl-C during annotate must not leave the writer thread writing into a file being closed."""
    done: list[int] = []
    release = threading.Event()  # the writer holds its first item until Ctrl-C has been sent: close() cannot end before it

    def handle(item: int) -> dict[str, float]:
        if item == 0:
            release.wait(10)
        done.append(item)
        return {}

    def press_ctrl_c() -> None:
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        release.set()

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises KeyboardInterrupt, whatever ran before
    writer = BackgroundWriter(handle, depth=8)
    for item in range(6):
        writer.submit(item)
    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    handled_when_close_ended: list[int] | None = None
    try:
        writer.close()
    except KeyboardInterrupt:
        handled_when_close_ended = list(done)
    finally:
        release.set()
        presser.join()
        signal.signal(signal.SIGINT, previous)
    assert handled_when_close_ended == list(range(6))  # the Ctrl-C came through, after every queued item was handled
