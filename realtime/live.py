"""``emo-live --camera N``: live recognition in a window.

Keys: q or Esc quits, p pauses, d toggles per-face probability bars, s saves a snapshot. A heads-up
line shows FPS, engine, faces and dropped frames; a summary (with the capture-to-overlay latency) is
printed when the window closes. A video file given with ``--source`` plays at its own frame rate, like
a camera: when recognition falls behind, frames are skipped and counted as dropped.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .detectors import to_bgr
from .overlay import draw_faces, draw_hud, draw_prob_bars
from .pipeline import Recognizer
from .records import Frame
from .signals import graceful_stop
from .sinks import JsonlSink, VideoSink, WindowSink, write_image
from .sources import FrameSource, LatestFrameReader, open_source

QUIT_KEYS = frozenset({ord("q"), 27})
PAUSE_KEY, BARS_KEY, SNAPSHOT_KEY = ord("p"), ord("d"), ord("s")


@dataclass
class LiveStats:
    """What a live session did, for the closing summary."""

    frames: int = 0
    dropped: int = 0
    seconds: float = 0.0
    snapshots: list[Path] = field(default_factory=list)
    labels_by_id: dict[int, Counter] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)
    """Per shown frame: from its arrival from the camera (or paced file) to its overlay being drawn."""

    def latency_percentile(self, q: float) -> float:
        return float(np.percentile(self.latency_ms, q)) if self.latency_ms else 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        people = ", ".join(f"#{face_id} mostly {counts.most_common(1)[0][0]}" for face_id, counts in sorted(self.labels_by_id.items())
                           if sum(counts.values()) >= 3)
        lines = [f"live: {self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} FPS), {self.dropped} dropped, "
                 f"{len(self.labels_by_id)} face id(s), latency capture->overlay p50 {self.latency_percentile(50):.1f} ms "
                 f"p95 {self.latency_percentile(95):.1f} ms"]
        if people:
            lines.append(f"live: {people}")
        lines += [f"live: snapshot {path}" for path in self.snapshots]
        return "\n".join(lines)


def _paced(frames: Iterable[Frame], start: list[float]) -> Iterator[Frame]:
    """Deliver a file's frames at its native rate, like a camera: no frame before its time.

    ``start[0]`` is the wall-clock time of frame time 0; moving it forward (pause) holds playback.
    """
    for frame in frames:
        delay = start[0] + frame.time - time.perf_counter()
        while delay > 0:
            time.sleep(min(delay, 0.05))
            delay = start[0] + frame.time - time.perf_counter()
        yield frame


def run_live(recognizer: Recognizer, source: str | int | FrameSource, *, jsonl: Path | None = None,
             record: Path | None = None, snapshot_dir: Path = Path("."), blur: bool = False) -> LiveStats:
    """Show annotated frames until the source ends or the user quits."""
    frame_source = source if isinstance(source, FrameSource) else open_source(source)
    info = frame_source.info
    stats, start = LiveStats(), [time.perf_counter()]
    # Capture runs on its own thread and recognition always takes the newest frame (the rest are counted
    # as dropped); a file is played at its native rate, exactly like a camera.
    reader = LatestFrameReader(_paced(frame_source, start) if info.kind == "video" else frame_source)
    records: JsonlSink | None = None
    video: VideoSink | None = None
    show_bars, recent = False, deque(maxlen=30)
    try:
        with graceful_stop() as stop, WindowSink(f"emolive - {info.location}") as window:
            # Outputs open once the window has: a machine without a display gets no empty files.
            records = JsonlSink(jsonl) if jsonl else None
            # Stills (an image, a folder) have no frame rate: their recording plays at 30 fps.
            video = VideoSink(record, info.fps or 30.0, (info.width, info.height)) if record else None
            for result in recognizer.stream(reader):
                recent.append(time.perf_counter())
                for face in result.faces:
                    stats.labels_by_id.setdefault(face.id, Counter())[face.label] += 1
                annotated = draw_faces(result.frame.image, result.faces, blur=blur)
                if records is not None:
                    records.write(result)
                if video is not None:
                    video.write(annotated)
                stats.frames += 1
                stats.dropped = reader.dropped
                if show_bars:  # bars first, so the boxes and tags stay readable on top of them
                    annotated = draw_faces(draw_prob_bars(to_bgr(result.frame.image).copy(), result.faces), result.faces, blur=blur)
                fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
                draw_hud(annotated, f"{fps:5.1f} FPS | {recognizer.engine.name} | {len(result.faces)} face(s) | "
                                    f"{stats.dropped} dropped | q quit  p pause  d bars  s snapshot")
                captured = reader.captured_at.pop(result.frame.index, None)
                if captured is not None:
                    stats.latency_ms.append((time.perf_counter() - captured) * 1000.0)
                key = window.show(annotated, 1)
                paused = key == PAUSE_KEY
                while True:  # handle the key; while paused, keep handling keys until p (resume) or quit
                    if key == SNAPSHOT_KEY:
                        path = snapshot_dir / f"emolive_snapshot_{result.frame.index:06d}.png"
                        write_image(path, annotated)
                        stats.snapshots.append(path)
                    elif key == BARS_KEY:
                        show_bars = not show_bars
                    if not paused or key in QUIT_KEYS or window.closed_by_user or stop.is_set():
                        break
                    paused_at = time.perf_counter()
                    key = window.show(annotated, 50)
                    start[0] += time.perf_counter() - paused_at  # a paused file resumes where it stopped
                    if key == PAUSE_KEY:
                        break
                if key in QUIT_KEYS or window.closed_by_user or stop.is_set():
                    break
    except KeyboardInterrupt:
        pass
    finally:
        stats.seconds = time.perf_counter() - start[0]
        if records is not None:
            records.close()
        if video is not None:
            video.close(keep=True)
    return stats
