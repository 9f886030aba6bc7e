"""``emo-live annotate``: annotated video/images plus one JSONL record per frame, with progress."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from emolive.models.errors import OutputError

from .overlay import draw_faces
from .pipeline import Recognizer
from .records import Frame
from .samples import SAMPLE_NAME, sample_frames
from .sinks import IMAGE_OUTPUT_SUFFIXES, VIDEO_OUTPUT_SUFFIXES, JsonlSink, VideoSink, write_image
from .sources import FrameSource, SourceInfo, open_source

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

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        state = "interrupted after" if self.interrupted else "annotated"
        return (f"{state} {self.frames} frame(s): faces in {self.frames_with_faces}, {self.faces} face(s) in all, "
                f"{self.seconds:.1f} s ({self.fps:.1f} FPS) -> {self.output}, {self.jsonl}")


def resolve_outputs(info: SourceInfo, output: Path, jsonl: Path | None) -> tuple[Path, Path]:
    """Decide the annotated output path and the JSONL path for a source, validating suffixes."""
    source_path = Path(info.location)
    if info.kind == "video":
        if output.suffix.lower() not in VIDEO_OUTPUT_SUFFIXES:
            if output.suffix:
                raise OutputError(f"output '{output.name}' is not a video file; for a video input use -o NAME.mp4 (or {', '.join(sorted(VIDEO_OUTPUT_SUFFIXES))})")
            output = output / f"{source_path.stem}_annotated.mp4"
    elif info.kind == "image":
        if output.suffix.lower() not in IMAGE_OUTPUT_SUFFIXES:
            if output.suffix:
                raise OutputError(f"output '{output.name}' is not an image file; for an image input use -o NAME.jpg or NAME.png")
            output = output / f"{source_path.stem}_annotated{source_path.suffix if source_path.suffix.lower() in IMAGE_OUTPUT_SUFFIXES else '.jpg'}"
    elif output.suffix:
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


def annotate(recognizer: Recognizer, input_path: str | FrameSource | list[Frame] | None, output: str | Path, *,
             jsonl: str | Path | None = None, progress: bool = True) -> AnnotateSummary:
    """Annotate a video, an image, a folder of images, or (``input_path=None``) the embedded sample photo."""
    source = input_path if isinstance(input_path, list) else open_input(input_path)
    if isinstance(source, list):
        image = source[0].image
        info = SourceInfo("image", SAMPLE_NAME, 0.0, 1, image.shape[1], image.shape[0])
    else:
        info = source.info
    output_path, jsonl_path = resolve_outputs(info, Path(output), Path(jsonl) if jsonl else None)
    folder_input = Path(info.location) if info.kind == "folder" else None

    frames = faces = with_faces = 0
    interrupted = finished = False
    tic = time.perf_counter()
    video = VideoSink(output_path, info.fps, (info.width, info.height)) if info.kind == "video" else None
    try:
        with JsonlSink(jsonl_path) as records:
            bar = tqdm(total=info.frame_count, unit="frame", desc="annotate", disable=not progress, dynamic_ncols=True, file=sys.stderr)
            try:
                for result in recognizer.stream(source):
                    annotated = draw_faces(result.frame.image, result.faces)
                    if video is not None:
                        video.write(annotated)
                    elif folder_input is not None:
                        write_image(output_path / Path(result.frame.source).name, annotated)
                    else:
                        write_image(output_path, annotated)
                    records.write(result)
                    frames += 1
                    faces += len(result.faces)
                    with_faces += bool(result.faces)
                    bar.update(1)
            finally:
                bar.close()
        finished = True
    except KeyboardInterrupt:
        interrupted = finished = True
    finally:
        # Finished or interrupted runs keep a playable video; a crash leaves no half file behind.
        if video is not None:
            video.close(keep=finished)
    return AnnotateSummary(frames, with_faces, faces, time.perf_counter() - tic, output_path, jsonl_path, interrupted)
