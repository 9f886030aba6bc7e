"""Metrics of temporal smoothing on label sequences: accuracy, transition latency, flicker.

All work on per-frame class ids of one track; a sequence of ``None``-free ints is one face, frame after frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def label_switches(labels: Sequence[int] | np.ndarray) -> int:
    """How often the label changes from one frame to the next."""
    labels = np.asarray(labels)
    return int(np.count_nonzero(labels[1:] != labels[:-1])) if len(labels) > 1 else 0


def flicker_rate(tracks: Iterable[Sequence[int] | np.ndarray], fps: float) -> tuple[float, int, float]:
    """Label switches per second per track: (switches / track-seconds, switches, track-seconds).

    Each item of ``tracks`` is one track's labels on consecutive frames; a track of one frame adds 1/fps
    seconds and no switch.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    switches, seconds = 0, 0.0
    for labels in tracks:
        switches += label_switches(labels)
        seconds += len(labels) / fps
    return (switches / seconds if seconds else 0.0), switches, seconds


def sustained_switches(labels: Sequence[int] | np.ndarray, min_run: int) -> int:
    """Label changes between the runs that ``labels`` hold for at least ``min_run`` consecutive frames.

    Shorter runs are dropped and equal neighbours then merged. A smoother that shows every such run's label
    at some frame of that run visits them in order, so it makes at least this many switches on the track:
    a floor on the flicker of any smoother that follows every change lasting ``min_run`` frames.
    """
    if min_run < 1:
        raise ValueError(f"min_run must be at least 1 frame, got {min_run}")
    labels = np.asarray(labels)
    if len(labels) == 0:
        return 0
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    lengths = np.diff(np.r_[starts, len(labels)])
    kept = labels[starts[lengths >= min_run]]
    return label_switches(kept)


def transition_latencies(true: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray) -> list[int | None]:
    """For each change of the true label: frames from the change until the predicted label first equals
    the new true label (0 = on the change frame itself), or ``None`` if it never does before the next change."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    if true.shape != predicted.shape:
        raise ValueError(f"true and predicted differ in length: {true.shape} vs {predicted.shape}")
    changes = np.flatnonzero(true[1:] != true[:-1]) + 1
    ends = np.append(changes[1:], len(true))
    latencies: list[int | None] = []
    for start, end in zip(changes, ends):
        hits = np.flatnonzero(predicted[start:end] == true[start])
        latencies.append(int(hits[0]) if len(hits) else None)
    return latencies


def latency_summary(latencies: Iterable[int | None]) -> dict[str, float]:
    """Median and mean latency over the transitions that were followed, and the share that were."""
    values = list(latencies)
    followed = np.array([v for v in values if v is not None], dtype=np.float64)
    return {
        "transitions": len(values),
        "followed": float(len(followed) / len(values)) if values else 0.0,
        "median_latency": float(np.median(followed)) if len(followed) else float("nan"),
        "mean_latency": float(followed.mean()) if len(followed) else float("nan"),
    }
