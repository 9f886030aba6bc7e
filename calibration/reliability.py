"""Reliability diagrams: accuracy against confidence per bin, before and after temperature scaling."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.models.errors import InputError, OutputError

from .temperature import expected_calibration_error


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics of top-1 confidence over equal-width bins of [0, 1]."""

    edges: np.ndarray       # (n_bins + 1,)
    counts: np.ndarray      # (n_bins,) faces per bin
    accuracy: np.ndarray    # (n_bins,) fraction correct, NaN for empty bins
    confidence: np.ndarray  # (n_bins,) mean top-1 confidence, NaN for empty bins
    ece: float


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> ReliabilityBins:
    """Bin top-1 confidences the same way :func:`expected_calibration_error` does."""
    probs, labels = _check(probs, labels, n_bins)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(which, weights=correct, minlength=n_bins) / counts
        mean_conf = np.bincount(which, weights=confidence, minlength=n_bins) / counts
    return ReliabilityBins(edges, counts, accuracy, mean_conf, expected_calibration_error(probs, labels, bins=n_bins))


def plot_reliability_diagram(probs_before: np.ndarray, probs_after: np.ndarray, labels: np.ndarray,
                             path: str | os.PathLike[str], n_bins: int = 15, title: str = "Reliability diagram") -> Path:
    """Draw accuracy vs. confidence (``n_bins`` bins) before and after temperature scaling to a PNG.

    ``probs_before`` / ``probs_after`` are (N, C) softmax outputs at T=1 and at the fitted T; the
    legend shows each curve's ECE. The file is written under a temporary name and renamed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = reliability_bins(probs_before, labels, n_bins)
    after = reliability_bins(probs_after, labels, n_bins)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {path.parent} for the reliability diagram ({exc.strerror}); choose a writable path") from None
    centers = (before.edges[:-1] + before.edges[1:]) / 2
    width = 1.0 / n_bins
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    try:
        top.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
        top.bar(centers, np.nan_to_num(before.accuracy), width=width, color="tab:red", alpha=0.35, edgecolor="tab:red",
                label=f"before (T=1): ECE {before.ece:.3f}")
        for stats, colour, name in ((before, "tab:red", None), (after, "tab:blue", f"after temperature scaling: ECE {after.ece:.3f}")):
            filled = stats.counts > 0
            top.plot(stats.confidence[filled], stats.accuracy[filled], marker="o", markersize=4, color=colour, label=name)
        top.set_ylabel("accuracy")
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_title(title)
        top.legend(loc="upper left", fontsize=8)
        bottom.bar(centers - width / 4, before.counts, width=width / 2, color="tab:red", alpha=0.6, label="before")
        bottom.bar(centers + width / 4, after.counts, width=width / 2, color="tab:blue", alpha=0.6, label="after")
        bottom.set_xlabel(f"confidence ({n_bins} bins)")
        bottom.set_ylabel("faces")
        fig.tight_layout()
        tmp = path.with_name(path.name + ".part")
        try:
            fig.savefig(tmp, format="png", dpi=120)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write reliability diagram {path} ({exc.strerror}); choose a writable path") from None
    finally:
        plt.close(fig)
    return path


def _check(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or len(probs) == 0 or labels.shape != (len(probs),):
        raise InputError(f"need probabilities (N, C) with N > 0 and N labels, got {probs.shape} and {labels.shape}")
    if n_bins < 1:
        raise InputError(f"n_bins must be at least 1, got {n_bins}")
    return probs, labels.astype(np.int64)
