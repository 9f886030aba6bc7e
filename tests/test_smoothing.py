import numpy as np
import pytest

from conftest import face_video
from emolive.models.errors import InputError
from emolive.realtime import Recognizer
from emolive.realtime.smoothing import EmaSmoother, create_smoother

A = np.array([1.0, 0.0])
B = np.array([0.0, 1.0])


def test_ema_is_per_track_and_a_new_track_starts_fresh():
    smoother = EmaSmoother(alpha=0.5)
    out = smoother.update([1, 2], np.stack([A, B]), active_ids=[1, 2])
    np.testing.assert_allclose(out, [A, B])
    out = smoother.update([1, 2], np.stack([B, B]), active_ids=[1, 2])
    np.testing.assert_allclose(out, [[0.5, 0.5], B])  # track 2 never saw A: no leak between faces


def test_state_is_dropped_when_the_tracker_forgets_a_track():
    smoother = EmaSmoother(alpha=0.9)
    smoother.update([7], A[None], active_ids=[7])
    smoother.update([], np.empty((0, 2)), active_ids=[])
    np.testing.assert_allclose(smoother.update([7], B[None], active_ids=[7]), B[None])


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError):
        EmaSmoother(alpha=1.0)
    with pytest.raises(InputError):
        create_smoother("kalman")


def test_smoothed_stream_keeps_raw_probs(tiny_model, sample_bgr, tmp_path):
    clip = face_video(tmp_path / "c.mp4", sample_bgr, frames=6)
    with Recognizer(tiny_model, smooth="ema") as recognizer:
        results = list(recognizer.stream(str(clip)))
    face = results[-1].faces[0]
    assert face.raw_probs is not None and "raw_probs" in face.to_dict()
    assert sum(face.probs) == pytest.approx(1.0, abs=1e-4)
    with Recognizer(tiny_model) as recognizer:
        assert "raw_probs" not in next(iter(recognizer.stream(str(clip)))).faces[0].to_dict()
