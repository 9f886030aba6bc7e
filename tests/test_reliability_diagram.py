"""Reliability diagram: bins agree with ECE, and a PNG is written atomically."""

import numpy as np
import pytest

from emolive.calibration.reliability import plot_reliability_diagram, reliability_bins
from emolive.calibration.temperature import expected_calibration_error
from emolive.models.errors import InputError


def _overconfident(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, n)
    logits = rng.normal(0, 1, (n, 7))
    logits[np.arange(n), labels] += 1.5  # right about half the time
    sharp = np.exp(logits * 4)
    soft = np.exp(logits)
    return sharp / sharp.sum(1, keepdims=True), soft / soft.sum(1, keepdims=True), labels


def test_bins_match_ece_and_count_every_face():
    before, _, labels = _overconfident()
    bins = reliability_bins(before, labels, n_bins=15)
    assert bins.counts.sum() == len(labels) and len(bins.counts) == 15
    filled = bins.counts > 0
    weighted_gap = np.sum(bins.counts[filled] / len(labels) * np.abs(bins.accuracy[filled] - bins.confidence[filled]))
    assert bins.ece == pytest.approx(weighted_gap) == pytest.approx(expected_calibration_error(before, labels, 15))


def test_diagram_png_is_written(tmp_path):
    before, after, labels = _overconfident()
    out = plot_reliability_diagram(before, after, labels, tmp_path / "sub" / "reliability.png")
    assert out == tmp_path / "sub" / "reliability.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["reliability.png"]


def test_mismatched_inputs_are_a_one_line_error(tmp_path):
    before, after, labels = _overconfident()
    with pytest.raises(InputError, match="N labels"):
        plot_reliability_diagram(before, after, labels[:-1], tmp_path / "r.png")
    assert not (tmp_path / "r.png").exists()
