"""``emo-live benchmark``: FPS, latency and per-stage time of the whole pipeline, per engine.

Stage times come from the timings every :class:`FrameResult` carries (decode, detect, preprocess,
classify, track) plus the render and encode steps timed here around the sinks, so the benchmark
measures the same code path users run. The ceiling is decoding plus encoding the same frames with no
recognition at all; ``fps / ceiling`` says how close the pipeline gets to it.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from emolive.models.errors import EmoliveError
from emolive.models.shipped import resolve_model_path

from .engines import ENGINES, InferenceEngine, create_engine
from .overlay import draw_faces
from .pipeline import STAGES, Recognizer
from .records import Frame
from .samples import synthetic_frames
from .sinks import VideoSink
from .sources import FrameSource, open_source

STAGE_ORDER: tuple[str, ...] = (*STAGES, "render", "encode")


@dataclass(frozen=True)
class BenchmarkRow:
    """One engine's result; ``status`` is ``ok`` or ``failed: reason``."""

    engine: str
    status: str
    model_mb: float = 0.0
    ms_per_face: float = 0.0
    fps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    faces_per_frame: float = 0.0
    frames: int = 0
    stages_ms: dict[str, float] = field(default_factory=dict)
    ceiling_fps: float = 0.0

    @property
    def ratio(self) -> float:
        return self.fps / self.ceiling_fps if self.ceiling_fps else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": round(self.ratio, 3)}


def engine_ms_per_face(engine: InferenceEngine, batch: int = 8, repeats: int = 200) -> float:
    """Median milliseconds per face of ``engine`` at ``batch`` faces per call (after warm-up)."""
    size = engine.info.preprocess.size
    x = np.random.default_rng(0).standard_normal((batch, 1, size, size)).astype(np.float32)
    for _ in range(20):
        engine.logits(x)
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        engine.logits(x)
        times.append(time.perf_counter() - tic)
    return float(np.median(times) * 1000.0 / batch)


def _frames(source: FrameSource | list[Frame], limit: int) -> Iterator[Frame]:
    for count, frame in enumerate(source):
        if count >= limit:
            return
        yield frame


def measure_ceiling(source: FrameSource | list[Frame], limit: int, size: tuple[int, int], fps: float) -> float:
    """Frames per second of decoding and encoding ``limit`` frames with no recognition."""
    with tempfile.TemporaryDirectory() as folder:
        tic, count = time.perf_counter(), 0
        with VideoSink(Path(folder) / "ceiling.mp4", fps, size) as sink:
            for frame in _frames(source, limit):
                sink.write(frame.image)
                count += 1
        seconds = time.perf_counter() - tic
    return count / seconds if seconds > 0 else 0.0


def run_pipeline(recognizer: Recognizer, source: FrameSource | list[Frame], limit: int, size: tuple[int, int], fps: float,
                 progress: bool = True) -> tuple[dict[str, list[float]], list[float], int, float]:
    """Run the headless annotate path; returns per-stage ms lists, per-frame latency, faces, wall seconds."""
    stages: dict[str, list[float]] = {name: [] for name in STAGE_ORDER}
    latency: list[float] = []
    faces = 0
    with tempfile.TemporaryDirectory() as folder:
        tic = time.perf_counter()
        with VideoSink(Path(folder) / "bench.mp4", fps, size) as sink:
            for result in tqdm(recognizer.stream(_frames(source, limit)), total=limit, unit="frame", desc="benchmark",
                               disable=not progress, leave=False):
                t0 = time.perf_counter()
                annotated = draw_faces(result.frame.image, result.faces)
                t1 = time.perf_counter()
                sink.write(annotated)
                t2 = time.perf_counter()
                timings = {**result.timings, "render": (t1 - t0) * 1000.0, "encode": (t2 - t1) * 1000.0}
                for name in STAGE_ORDER:
                    stages[name].append(timings.get(name, 0.0))
                latency.append(sum(timings.get(name, 0.0) for name in STAGE_ORDER))
                faces += len(result.faces)
        seconds = time.perf_counter() - tic
    return stages, latency, faces, seconds


def benchmark(source: str | int | None, *, engines: Iterable[str], frames: int = 300, model: str = "default",
              detector: str = "auto", threads: int = 0, progress: bool = True) -> list[BenchmarkRow]:
    """Benchmark each engine on ``source`` (a path, camera index, or None for synthetic frames)."""
    frame_source: FrameSource | list[Frame]
    if source is None:
        frame_source = list(synthetic_frames(frames))
        height, width = frame_source[0].image.shape[:2]
        fps = 30.0
    else:
        frame_source = open_source(source)
        info = frame_source.info
        width, height, fps = info.width, info.height, info.fps or 30.0
        if info.frame_count:
            frames = min(frames, info.frame_count)
    model_path = resolve_model_path(model)
    ceiling = measure_ceiling(frame_source, frames, (width, height), fps)
    rows = []
    for name in engines:
        try:
            engine = create_engine(name, model_path, threads=threads)
        except EmoliveError as exc:
            rows.append(BenchmarkRow(engine=name, status=f"failed: {exc}"))
            continue
        with Recognizer(engine=engine, detector=detector) as recognizer:
            ms_face = engine_ms_per_face(engine)
            stages, latency, faces, seconds = run_pipeline(recognizer, frame_source, frames, (width, height), fps, progress)
        count = len(latency)
        rows.append(BenchmarkRow(
            engine=name, status="ok", model_mb=round(os.path.getsize(model_path) / 1e6, 2), ms_per_face=round(ms_face, 3),
            fps=round(count / seconds, 1) if seconds else 0.0, p50_ms=round(float(np.percentile(latency, 50)), 2),
            p95_ms=round(float(np.percentile(latency, 95)), 2), faces_per_frame=round(faces / max(count, 1), 2), frames=count,
            stages_ms={k: round(float(np.mean(v)), 3) for k, v in stages.items()}, ceiling_fps=round(ceiling, 1)))
    return rows


def format_table(rows: list[BenchmarkRow]) -> str:
    header = f"{'engine':<14}{'status':<8}{'MB':>6}{'ms/face':>9}{'FPS':>8}{'p50 ms':>8}{'p95 ms':>8}{'faces':>7}{'ceiling':>9}{'ratio':>7}"
    lines = [header]
    for row in rows:
        if row.status != "ok":
            lines.append(f"{row.engine:<14}{row.status}")
            continue
        lines.append(f"{row.engine:<14}{'ok':<8}{row.model_mb:>6.2f}{row.ms_per_face:>9.3f}{row.fps:>8.1f}{row.p50_ms:>8.2f}"
                     f"{row.p95_ms:>8.2f}{row.faces_per_frame:>7.2f}{row.ceiling_fps:>9.1f}{row.ratio:>7.2f}")
    ok = [row for row in rows if row.status == "ok"]
    if ok:
        lines += ["", "mean ms per frame by stage:", f"{'engine':<14}" + "".join(f"{name:>11}" for name in STAGE_ORDER)]
        for row in ok:
            lines.append(f"{row.engine:<14}" + "".join(f"{row.stages_ms.get(name, 0.0):>11.3f}" for name in STAGE_ORDER))
    return "\n".join(lines)


def engine_names(spec: str) -> list[str]:
    """``all`` -> every engine this build knows; otherwise a comma-separated list."""
    if spec == "all":
        return [name for name in ENGINES if name != "auto"]
    return [name.strip() for name in spec.split(",") if name.strip()]
