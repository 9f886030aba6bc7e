"""Summaries of an annotated run, computed from its per-frame records (the JSONL dicts).

Per face id: frames and seconds on screen, first and last seen, dominant emotion, share of time in
each emotion, mean confidence; the same for the whole run. Computing from the records (not from
pipeline internals) means a summary can be rebuilt from any saved JSONL and checked against it.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from emolive.models.errors import InputError


@dataclass(frozen=True)
class EmotionStats:
    """How one face (or the whole run) spent its time: counts, shares per label, confidence."""

    frames: int
    seconds: float
    first_seen: float
    last_seen: float
    dominant: str
    share: dict[str, float]
    mean_confidence: float


@dataclass(frozen=True)
class RunSummary:
    """Summary of one annotated video or folder."""

    source: str
    kind: str                       # "video" (ids are tracks) or "images" (ids restart per image)
    labels: tuple[str, ...]
    frames: int
    frames_with_faces: int
    frame_interval: float           # seconds per frame (0 for images)
    duration: float                 # seconds covered by the frames (0 for images)
    overall: EmotionStats | None    # over every face-frame; ``seconds`` = time with any face on screen
    faces: dict[int, EmotionStats]  # per face id (videos only)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["faces"] = {str(k): asdict(v) for k, v in self.faces.items()}
        return data


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Load per-frame records; a malformed line raises InputError naming it."""
    records = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise InputError(f"{path} line {number} is not valid JSON ({exc.msg}); pass a JSONL written by emo-live annotate") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a UTF-8 text file; pass a JSONL written by emo-live annotate") from None
    for number, record in enumerate(records, 1):
        problem = _record_problem(record)
        if problem:
            raise InputError(f"{path} record {number} {problem}; pass a JSONL written by emo-live annotate")
    return records


_FACE_FIELDS = {"id": int, "label": str, "confidence": (int, float), "probs": dict}


def _record_problem(record: Any) -> str | None:
    """What makes ``record`` unusable for a summary (None when it is a well-formed frame record)."""
    if not isinstance(record, dict) or not {"frame", "time", "source", "faces"} <= set(record):
        return "lacks frame/time/source/faces"
    if not isinstance(record["time"], (int, float)) or not isinstance(record["faces"], list):
        return "has a non-numeric time or a faces field that is not a list"
    for face in record["faces"]:
        if not isinstance(face, dict) or any(not isinstance(face.get(key), kind) for key, kind in _FACE_FIELDS.items()):
            return "has a face without a numeric id/confidence, a label or probs"
        if not all(isinstance(p, (int, float)) for p in face["probs"].values()):
            return "has a face with non-numeric probs"
    return None


def _stats(rows: Sequence[dict[str, Any]], labels: tuple[str, ...], interval: float) -> EmotionStats:
    counts = Counter(face["label"] for _, face in rows)
    times = [time for time, _ in rows]
    return EmotionStats(
        frames=len(rows),
        seconds=round(len(rows) * interval, 3),
        first_seen=round(min(times), 3),
        last_seen=round(max(times), 3),
        dominant=max(labels, key=lambda name: (counts[name], -labels.index(name))),
        share={name: round(counts[name] / len(rows), 4) for name in labels},
        mean_confidence=round(float(np.mean([face["confidence"] for _, face in rows])), 4),
    )


def summarize(records: Iterable[dict[str, Any]], *, kind: str | None = None) -> RunSummary:
    """Summarize per-frame records. ``kind`` defaults to images when frames come from several files."""
    records = list(records)
    if not records:
        raise InputError("no frames to summarize; the run produced no records")
    labels: tuple[str, ...] = ()
    for record in records:
        for face in record["faces"]:
            labels = tuple(face["probs"])
            break
        if labels:
            break
    sources = {record["source"] for record in records}
    kind = kind or ("images" if len(sources) > 1 else "video")
    times = np.array([record["time"] for record in records], dtype=float)
    interval = float(np.median(np.diff(times))) if kind == "video" and len(times) > 1 else 0.0
    all_faces = [(record["time"], face) for record in records for face in record["faces"]]
    frames_with_faces = sum(1 for record in records if record["faces"])
    overall = None
    if all_faces:
        overall = _stats(all_faces, labels, interval)
        overall = replace(overall, seconds=round(frames_with_faces * interval, 3))
    per_id: dict[int, list[tuple[float, dict[str, Any]]]] = {}
    if kind == "video":
        for time, face in all_faces:
            per_id.setdefault(int(face["id"]), []).append((time, face))
    return RunSummary(
        source=records[0]["source"] if len(sources) == 1 else str(Path(records[0]["source"]).parent),
        kind=kind,
        labels=labels,
        frames=len(records),
        frames_with_faces=frames_with_faces,
        frame_interval=round(interval, 6),
        duration=round(len(records) * interval, 3),
        overall=overall,
        faces={face_id: _stats(rows, labels, interval) for face_id, rows in sorted(per_id.items())},
    )


def summary_csv(summary: RunSummary) -> str:
    """One row per face id plus an ``all`` row: time on screen, dominant emotion, shares, confidence."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "frames", "seconds_on_screen", "first_seen", "last_seen", "dominant", "mean_confidence",
                     *(f"share_{name}" for name in summary.labels)])
    rows = [(str(k), v) for k, v in summary.faces.items()]
    if summary.overall is not None:
        rows.append(("all", summary.overall))
    for name, stats in rows:
        writer.writerow([name, stats.frames, stats.seconds, stats.first_seen, stats.last_seen, stats.dominant,
                         stats.mean_confidence, *(stats.share[label] for label in summary.labels)])
    return buffer.getvalue()
