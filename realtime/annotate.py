"""``emo-live annotate``: annotated video/images plus one JSONL record per frame, with progress."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from collections.abc import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from emolive.models.errors import InputError, OutputError

from .overlay import draw_faces
from .pipeline import Recognizer
from .records import FaceResult, Frame, FrameResult
from .samples import SAMPLE_NAME, sample_frames
from .signals import graceful_stop
from .sinks import IMAGE_OUTPUT_SUFFIXES, VIDEO_OUTPUT_SUFFIXES, JsonlSink, VideoSink, write_image
from .sources import FrameSource, SourceInfo, open_source
from .workers import BackgroundWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnnotateSummary:
    """What an annotate run did: counts, wall time and where the outputs are."""

    frames: int
    frames_with_faces: int
    faces: int
    seconds: float
    output: Path
    jsonl: Path
    interrupted: bool = False
    report: Path | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        state = "interrupted after" if self.interrupted else "annotated"
        report = f", report {self.report}" if self.report else ""
        return (f"{state} {self.frames} frame(s): faces in {self.frames_with_faces}, {self.faces} face(s) in all, "
                f"{self.seconds:.1f} s ({self.fps:.1f} FPS) -> {self.output}, {self.jsonl}{report}")


def resolve_outputs(info: SourceInfo, output: Path, jsonl: Path | None) -> tuple[Path, Path]:
    """Decide the annotated output path and the JSONL path for a source, validating suffixes."""
    source_path = Path(info.location)
    named_file = bool(output.suffix) and not output.is_dir()  # an existing folder may have a dot in its name
    if info.kind == "video":
        if output.suffix.lower() not in VIDEO_OUTPUT_SUFFIXES or output.is_dir():
            if named_file:
                raise OutputError(f"output '{output.name}' is not a video file; for a video input use -o NAME.mp4 (or {', '.join(sorted(VIDEO_OUTPUT_SUFFIXES))})")
            output = output / f"{source_path.stem}_annotated.mp4"
    elif info.kind == "image":
        if output.suffix.lower() not in IMAGE_OUTPUT_SUFFIXES or output.is_dir():
            if named_file:
                raise OutputError(f"output '{output.name}' is not an image file; for an image input use -o NAME.jpg or NAME.png")
            output = output / f"{source_path.stem}_annotated{source_path.suffix if source_path.suffix.lower() in IMAGE_OUTPUT_SUFFIXES else '.jpg'}"
    elif named_file:
        raise OutputError(f"output '{output}' looks like a file; for a folder of images pass an output folder with -o")
    if source_path.exists() and output.exists() and output.resolve() == source_path.resolve():
        raise OutputError(f"output {output} is the input file; choose another -o so the input is not overwritten")
    if jsonl is None:
        jsonl = output / "annotations.jsonl" if info.kind == "folder" else output.with_suffix(".jsonl")
    if source_path.exists() and jsonl.resolve() == source_path.resolve():
        raise OutputError(f"JSONL path {jsonl} is the input file; choose another --jsonl")
    return output, jsonl


def open_input(input_path: str | FrameSource | None) -> FrameSource | list[Frame]:
    """Probe an annotate input (a path, or None for the embedded sample photo) before any model loads."""
    if input_path is None:
        return sample_frames()
    source = input_path if isinstance(input_path, FrameSource) else open_source(input_path)
    if source.info.is_live:
        raise OutputError(f"{source.info.location} is a live {source.info.kind}; annotate takes files, use 'emo-live --camera N' for live input")
    return source


def default_report_dir(kind: str, output: Path) -> Path | None:
    """Videos and folders get a report next to the output by default; single images do not."""
    if kind == "video":
        return output.with_name(f"{output.stem}_report")
    if kind == "folder":
        return output / "report"
    return None


class ThumbnailCollector:
    """Keeps, per face id, a small JPEG of its most confidently detected crop (only when asked)."""

    def __init__(self, size: int = 96) -> None:
        self.size = size
        self._best: dict[int, tuple[float, bytes]] = {}

    def update(self, image: np.ndarray, faces: Sequence[FaceResult]) -> None:
        from .detectors import to_bgr

        for face in faces:
            if face.id in self._best and self._best[face.id][0] >= face.detection_score:
                continue
            x, y, w, h = face.box
            crop = to_bgr(image[y:y + h, x:x + w])
            scale = self.size / max(crop.shape[:2])
            crop = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))), interpolation=cv2.INTER_AREA)
            ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
            if ok:
                self._best[face.id] = (face.detection_score, data.tobytes())

    @property
    def thumbnails(self) -> dict[int, bytes]:
        return {face_id: data for face_id, (_, data) in self._best.items()}


def annotate(recognizer: Recognizer, input_path: str | FrameSource | list[Frame] | None, output: str | Path, *,
             jsonl: str | Path | None = None, progress: bool = True, report: str | Path | None | bool = True,
             thumbnails: bool = False, blur: bool = False) -> AnnotateSummary:
    """Annotate a video, an image, a folder of images, or (``input_path=None``) the embedded sample photo.

    ``report``: True for the default report folder (videos and folders), a path, or False/None for none.
    ``thumbnails`` adds one face crop per id to the HTML report (face crops are saved only when asked);
    ``blur`` blurs every face in the annotated output.
    """
    source = input_path if isinstance(input_path, list) else open_input(input_path)
    if isinstance(source, list):
        image = source[0].image
        info = SourceInfo("image", SAMPLE_NAME, 0.0, 1, image.shape[1], image.shape[0])
    else:
        info = source.info
    output_path, jsonl_path = resolve_outputs(info, Path(output), Path(jsonl) if jsonl else None)
    folder_input = Path(info.location) if info.kind == "folder" else None
    report_dir = default_report_dir(info.kind, output_path) if report is True else (Path(report) if report else None)
    if report_dir is not None and report_dir.exists() and not report_dir.is_dir():  # found out before the run, not after
        raise OutputError(f"report folder {report_dir} is a file; choose another --report or pass --no-report")
    collector = ThumbnailCollector() if thumbnails and info.kind == "video" else None

    frames = faces = with_faces = 0
    interrupted = finished = False
    tic = time.perf_counter()
    video = VideoSink(output_path, info.fps, (info.width, info.height)) if info.kind == "video" else None
    try:
        with graceful_stop() as stop, JsonlSink(jsonl_path) as records:

            def write(result: FrameResult) -> dict[str, float]:
                """Render, encode and record one frame (on the writer thread)."""
                t0 = time.perf_counter()
                annotated = draw_faces(result.frame.image, result.faces, blur=blur)
                t1 = time.perf_counter()
                if video is not None:
                    video.write(annotated)
                elif folder_input is not None:
                    write_image(output_path / Path(result.frame.source).name, annotated)
                else:
                    write_image(output_path, annotated)
                t2 = time.perf_counter()
                records.write(result)
                if collector is not None:
                    collector.update(result.frame.image, result.faces)
                return {"render": (t1 - t0) * 1000.0, "encode": (t2 - t1) * 1000.0}

            bar = tqdm(total=info.frame_count, unit="frame", desc="annotate", disable=not progress, dynamic_ncols=True, file=sys.stderr)
            try:
                with BackgroundWriter(write) as writer:
                    for result in recognizer.stream(source, track=info.kind == "video"):
                        writer.submit(result)
                        frames += 1
                        faces += len(result.faces)
                        with_faces += bool(result.faces)
                        bar.update(1)
                        if stop.is_set():
                            interrupted = True
                            break
            finally:
                bar.close()
        finished = True
    except KeyboardInterrupt:
        interrupted = finished = True
    finally:
        # Finished or interrupted runs keep a playable video; a crash leaves no half file behind.
        if video is not None:
            video.close(keep=finished)
    if not frames and not interrupted:  # e.g. a video whose header reads but whose frames do not decode
        jsonl_path.unlink(missing_ok=True)
        raise InputError(f"{info.location} has no decodable frames (corrupt or truncated); re-encode it to H.264 MP4")
    seconds = time.perf_counter() - tic
    if report_dir is not None and frames:
        from .report import write_report
        from .summary import read_jsonl

        write_report(read_jsonl(jsonl_path), report_dir, kind="images" if info.kind == "folder" else "video",
                     thumbnails=collector.thumbnails if collector is not None else None)
    return AnnotateSummary(frames, with_faces, faces, seconds, output_path, jsonl_path, interrupted,
                           report_dir if frames else None)
