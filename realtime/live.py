"""``emo-live --camera N``: live recognition in a window (q or Esc quits)."""

from __future__ import annotations

import time
from pathlib import Path

from .overlay import draw_faces
from .pipeline import Recognizer
from .sinks import JsonlSink, VideoSink, WindowSink
from .sources import FrameSource, open_source

QUIT_KEYS = frozenset({ord("q"), 27})


def run_live(recognizer: Recognizer, source: str | int | FrameSource, *, jsonl: Path | None = None,
             record: Path | None = None) -> dict[str, float]:
    """Show annotated frames until the source ends or the user quits; returns frames and FPS."""
    frame_source = source if isinstance(source, FrameSource) else open_source(source)
    info = frame_source.info
    pace = info.kind == "video"  # a file plays at its own frame rate, like a camera would deliver it
    frames, tic = 0, time.perf_counter()
    records = JsonlSink(jsonl) if jsonl else None
    video = VideoSink(record, info.fps, (info.width, info.height)) if record else None
    try:
        with WindowSink(f"emolive - {info.location}") as window:
            for result in recognizer.stream(frame_source):
                annotated = draw_faces(result.frame.image, result.faces)
                if records is not None:
                    records.write(result)
                if video is not None:
                    video.write(annotated)
                frames += 1
                wait_ms = 1
                if pace:
                    wait_ms = max(1, int((result.frame.time - (time.perf_counter() - tic)) * 1000))
                key = window.show(annotated, wait_ms)
                if key in QUIT_KEYS or window.closed_by_user:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        if records is not None:
            records.close()
        if video is not None:
            video.close(keep=True)
    seconds = time.perf_counter() - tic
    return {"frames": frames, "seconds": seconds, "fps": frames / seconds if seconds > 0 else 0.0}
