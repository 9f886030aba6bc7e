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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from emolive.models.errors import EmoliveError, InputError
from emolive.models.onnx_io import read_onnx_info
from emolive.models.shipped import fp32_source, resolve_model_path

from .engines import ENGINES, InferenceEngine
from .overlay import draw_faces
from .pipeline import STAGES, Recognizer, pipeline_engine
from .records import Frame, FrameResult
from .samples import synthetic_frames
from .schedule import DEFAULT_SCHEDULE, DetectSchedule
from .sinks import VideoSink
from .sources import FrameSource, open_source
from .workers import BackgroundWriter, PrefetchReader

STAGE_ORDER: tuple[str, ...] = (*STAGES, "render", "encode")


@dataclass(frozen=True)
class BenchmarkRow:
    """One engine's result; ``status`` is ``ok`` or ``failed: reason``."""

    engine: str
    status: str
    precision: str = "fp32"
    model_mb: float = 0.0
    ms_per_face: float = 0.0
    fps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    faces_per_frame: float = 0.0
    frames: int = 0
    stages_ms: dict[str, float] = field(default_factory=dict)
    ceiling_fps: float = 0.0
    detect_every: str = "1"
    agreement: dict[str, float] | None = None

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
    """Frames per second of decoding and encoding ``limit`` frames, one after the other, with no recognition."""
    with tempfile.TemporaryDirectory() as folder:
        tic, count = time.perf_counter(), 0
        with VideoSink(Path(folder) / "ceiling.mp4", fps, size) as sink:
            for frame in _frames(source, limit):
                sink.write(frame.image)
                count += 1
        seconds = time.perf_counter() - tic
    return count / seconds if seconds > 0 else 0.0


@dataclass
class PipelineRun:
    """What one headless annotate-path run measured, frame by frame."""

    stages: dict[str, list[float]]
    latency_ms: list[float]
    faces: int
    seconds: float
    results: list[list[tuple[tuple[int, int, int, int], str]]]  # per frame: (box, label) of each face

    @property
    def frames(self) -> int:
        return len(self.latency_ms)


def run_pipeline(recognizer: Recognizer, source: FrameSource | list[Frame], limit: int, size: tuple[int, int], fps: float,
                 progress: bool = True) -> PipelineRun:
    """Run the annotate path (decode thread -> recognizer -> render/encode thread) into a scratch video.

    Latency of a frame: from the moment recognition asks for it (decoding time included) until its
    annotated image is encoded.
    """
    stages: dict[str, list[float]] = {name: [] for name in STAGE_ORDER}
    latency: list[float] = []
    results: list[list[tuple[tuple[int, int, int, int], str]]] = []
    faces = 0
    with tempfile.TemporaryDirectory() as folder:
        tic = time.perf_counter()
        with VideoSink(Path(folder) / "bench.mp4", fps, size) as sink:

            def write(item: tuple[FrameResult, float]) -> dict[str, float]:
                result, started = item
                t0 = time.perf_counter()
                annotated = draw_faces(result.frame.image, result.faces)
                t1 = time.perf_counter()
                sink.write(annotated)
                t2 = time.perf_counter()
                latency.append((t2 - started) * 1000.0 + result.timings.get("decode", 0.0))
                return {"render": (t1 - t0) * 1000.0, "encode": (t2 - t1) * 1000.0}

            stream = recognizer.stream(PrefetchReader(_frames(source, limit)))
            with BackgroundWriter(write) as writer, tqdm(total=limit, unit="frame", desc="benchmark", disable=not progress, leave=False) as bar:
                while True:
                    started = time.perf_counter()
                    result = next(stream, None)
                    if result is None:
                        break
                    writer.submit((result, started))
                    for name in STAGES:
                        stages[name].append(result.timings.get(name, 0.0))
                    results.append([(face.box, face.label) for face in result.faces])
                    faces += len(result.faces)
                    bar.update(1)
        seconds = time.perf_counter() - tic
    for timing in writer.stage_ms:
        stages["render"].append(timing["render"])
        stages["encode"].append(timing["encode"])
    return PipelineRun(stages, latency, faces, seconds, results)


def schedule_agreement(reference: PipelineRun, run: PipelineRun, min_iou: float = 0.5) -> dict[str, float]:
    """How closely ``run`` reproduces ``reference`` (detector on every frame), frame by frame.

    recall: share of reference faces with a box of IoU >= ``min_iou`` in the same frame; iou: mean IoU of
    those matches; label: share of matched faces with the same label.
    """
    from scipy.optimize import linear_sum_assignment

    from .tracking import iou_matrix

    total = matched = same_label = 0
    ious: list[float] = []
    for ref_faces, faces in zip(reference.results, run.results):
        total += len(ref_faces)
        if not ref_faces or not faces:
            continue
        overlap = iou_matrix(np.array([b for b, _ in ref_faces], float), np.array([b for b, _ in faces], float))
        rows, cols = linear_sum_assignment(-overlap)
        for r, c in zip(rows, cols):
            if overlap[r, c] >= min_iou:
                matched += 1
                ious.append(float(overlap[r, c]))
                same_label += ref_faces[r][1] == faces[c][1]
    return {"recall": round(matched / total, 4) if total else 1.0, "iou": round(float(np.mean(ious)), 4) if ious else 0.0,
            "label": round(same_label / matched, 4) if matched else 0.0}


def _variants(names: Iterable[str], model_path: Path) -> list[tuple[str, str, Path]]:
    """(engine, precision, model file) for each engine asked for.

    ONNX Runtime runs both precisions where both ship: an FP32 model and the ``NAME.int8.onnx`` beside
    it, or a shipped INT8 model and the FP32 model it was quantized from. Other engines get the model
    as given (PyTorch runs an INT8 file's FP32 network; TensorRT builds FP16 from its FP32 source).
    """
    if read_onnx_info(model_path).precision == "int8":
        fp32, int8 = fp32_source(model_path), model_path
    else:
        sibling = model_path.with_name(f"{model_path.stem}.int8.onnx")
        fp32, int8 = model_path, sibling if sibling.is_file() else None
    variants = []
    for name in names:
        if name == "onnxruntime":
            variants += [(name, precision, path) for precision, path in (("fp32", fp32), ("int8", int8)) if path is not None]
        else:
            variants.append((name, "fp32", model_path))
    return variants


def benchmark(source: str | int | None, *, engines: Iterable[str], frames: int = 300, model: str = "default",
              detector: str = "auto", threads: int = 0, detect_every: Sequence[int | str | DetectSchedule] = (DEFAULT_SCHEDULE,),
              repeat: int = 1, progress: bool = True) -> list[BenchmarkRow]:
    """Benchmark each engine (and detection schedule) on ``source`` (a path, camera index, or None for synthetic frames).

    ``repeat`` runs the ceiling and every pipeline that many times and keeps the median run.
    """
    if repeat < 1:
        raise InputError(f"--repeat must be at least 1, got {repeat}")
    if frames < 1:
        raise InputError(f"--frames must be at least 1, got {frames}")
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
    schedules = [DetectSchedule.parse(every) for every in detect_every]
    model_path = resolve_model_path(model)
    # Short clips are timed several times; the median run is reported (one run of 72 frames is noisy).
    ceiling = float(np.median([measure_ceiling(frame_source, frames, (width, height), fps) for _ in range(repeat)]))
    rows = []
    for name, precision, path in _variants(engines, model_path):
        try:
            engine = pipeline_engine(name, path, threads=threads)  # configured as annotate and live run it
        except EmoliveError as exc:
            rows.append(BenchmarkRow(engine=name, precision=precision, status=f"failed: {exc}"))
            continue
        reference: PipelineRun | None = None
        precision = getattr(engine, "precision", engine.info.precision)  # what actually runs (TensorRT: fp16 by default)
        weights = getattr(engine, "checkpoint", path)  # PyTorch loads the .safetensors, not the ONNX file
        with engine:
            ms_face = engine_ms_per_face(engine)
            for schedule in schedules:
                every = str(schedule)
                try:
                    with Recognizer(engine=engine, detector=detector, detect_every=schedule) as recognizer:
                        runs = [run_pipeline(recognizer, frame_source, frames, (width, height), fps, progress) for _ in range(repeat)]
                    run = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
                except EmoliveError as exc:  # one engine failing must not hide the others' rows
                    rows.append(BenchmarkRow(engine=name, precision=precision, status=f"failed: {exc}", detect_every=every))
                    continue
                if schedule == DetectSchedule(1, 1):
                    reference = run
                count = run.frames
                rows.append(BenchmarkRow(
                    engine=name, precision=precision, status="ok", model_mb=round(os.path.getsize(weights) / 1e6, 2),
                    ms_per_face=round(ms_face, 3), fps=round(count / run.seconds, 1) if run.seconds else 0.0,
                    p50_ms=round(float(np.percentile(run.latency_ms, 50)), 2), p95_ms=round(float(np.percentile(run.latency_ms, 95)), 2),
                    faces_per_frame=round(run.faces / max(count, 1), 2), frames=count, detect_every=every,
                    stages_ms={k: round(float(np.mean(v)), 3) if v else 0.0 for k, v in run.stages.items()}, ceiling_fps=round(ceiling, 1),
                    agreement=schedule_agreement(reference, run) if reference is not None and run is not reference else None))
    return rows


def format_table(rows: list[BenchmarkRow]) -> str:
    """The people's view: one line per engine x precision x detection schedule, then stage times."""
    def name(row: BenchmarkRow) -> str:
        return f"{row.engine} {row.precision}"

    header = (f"{'engine':<18}{'det/N':>6}{'MB':>6}{'ms/face':>9}{'FPS':>8}{'p50 ms':>8}{'p95 ms':>8}{'faces':>7}"
              f"{'ceiling':>9}{'ratio':>7}  agreement with N=1 (recall/IoU/label)")
    lines = [header]
    for row in rows:
        if row.status != "ok":
            lines.append(f"{name(row):<18}{row.status}")
            continue
        agreement = "" if row.agreement is None else f"  {row.agreement['recall']:.3f}/{row.agreement['iou']:.3f}/{row.agreement['label']:.3f}"
        lines.append(f"{name(row):<18}{row.detect_every:>6}{row.model_mb:>6.2f}{row.ms_per_face:>9.3f}{row.fps:>8.1f}{row.p50_ms:>8.2f}"
                     f"{row.p95_ms:>8.2f}{row.faces_per_frame:>7.2f}{row.ceiling_fps:>9.1f}{row.ratio:>7.2f}{agreement}")
    ok = [row for row in rows if row.status == "ok"]
    if ok:
        lines += ["", "mean ms per frame by stage (render and encode run on their own thread):",
                  f"{'engine':<18}{'det/N':>6}" + "".join(f"{stage:>11}" for stage in STAGE_ORDER)]
        for row in ok:
            lines.append(f"{name(row):<18}{row.detect_every:>6}" + "".join(f"{row.stages_ms.get(stage, 0.0):>11.3f}" for stage in STAGE_ORDER))
    return "\n".join(lines)


def engine_names(spec: str) -> list[str]:
    """``all`` -> every engine this build knows; otherwise a comma-separated list."""
    if spec == "all":
        return [name for name in ENGINES if name != "auto"]
    return [name.strip() for name in spec.split(",") if name.strip()]
