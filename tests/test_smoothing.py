import numpy as np
import pytest

from conftest import face_video
from emolive.models.errors import InputError
from emolive.realtime import Recognizer
from emolive.realtime.records import FaceResult
from emolive.realtime.smoothing import EmaSmoother, LabelHysteresis, LstmSmoother, NoSmoothing, create_smoother

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
    with pytest.raises(InputError, match="--smooth-alpha"):
        EmaSmoother(alpha=1.0)
    with pytest.raises(InputError):
        create_smoother("kalman")


def test_smooth_alpha_is_used_by_ema_and_named_as_ignored_elsewhere(caplog):
    assert create_smoother("ema").alpha == 0.7 and create_smoother("ema", alpha=0.5).alpha == 0.5
    with caplog.at_level("WARNING"):
        create_smoother("none")
        assert not caplog.records
        create_smoother("none", alpha=0.5)
    assert "--smooth-alpha 0.5 applies to EMA smoothing only; it is ignored with --smooth none" in caplog.text


def test_smoothed_stream_keeps_raw_probs(tiny_model, sample_bgr, tmp_path):
    clip = face_video(tmp_path / "c.mp4", sample_bgr, frames=6)
    with Recognizer(tiny_model, smooth="ema") as recognizer:
        results = list(recognizer.stream(str(clip)))
    face = results[-1].faces[0]
    assert face.raw_probs is not None and "raw_probs" in face.to_dict()
    assert sum(face.probs) == pytest.approx(1.0, abs=1e-4)
    with Recognizer(tiny_model, smooth="none", hysteresis=0.0, dwell=1) as recognizer:
        assert "raw_probs" not in next(iter(recognizer.stream(str(clip)))).faces[0].to_dict()


def test_lstm_smoothed_stream_runs_the_cnns_temporal_head(tiny_model_with_head, sample_bgr, tmp_path):
    clip = face_video(tmp_path / "c.mp4", sample_bgr, frames=6)
    with Recognizer(tiny_model_with_head, smooth="lstm") as recognizer:
        results = list(recognizer.stream(str(clip)))
    faces = [face for result in results for face in result.faces]
    assert faces and all(face.raw_probs is not None and "raw_probs" in face.to_dict() for face in faces)
    assert all(sum(face.probs) == pytest.approx(1.0, abs=1e-4) for face in faces)
    assert not np.allclose(faces[-1].probs, faces[-1].raw_probs, atol=1e-3)  # the head's output, not the CNN's


def test_lstm_smoothing_without_a_head_is_a_one_line_model_error(tiny_model):
    from emolive.models.errors import ModelError

    with pytest.raises(ModelError, match="train-temporal") as caught:
        Recognizer(tiny_model, smooth="lstm")
    assert "\n" not in str(caught.value)


# -- label hysteresis -------------------------------------------------------------------------------

def _shown(smoother, frames, track=1):
    """Displayed class index of one track over frames of 2-class probabilities."""
    shown = []
    for p in frames:
        smoother.update([track], np.array([p]), [track])
        shown.append(int(smoother.held_labels([track])[0]))
    return shown


def test_hysteresis_holds_the_label_against_a_brief_challenger_and_switches_after_the_dwell():
    smoother = create_smoother("none", dwell=3)
    assert isinstance(smoother, LabelHysteresis)
    a, b = [0.8, 0.2], [0.3, 0.7]
    # B leads for 2 frames (held), loses its streak, then leads 3 frames in a row: the display switches on the 3rd.
    assert _shown(smoother, [a, b, b, a, b, b, b, b]) == [0, 0, 0, 0, 0, 0, 1, 1]
    # back to A needs 3 frames too
    assert _shown(smoother, [a, a, a]) == [1, 1, 0]


def test_hysteresis_margin_ignores_narrow_leads():
    smoother = create_smoother("none", margin=0.2)
    narrow, clear = [0.45, 0.55], [0.35, 0.65]
    assert _shown(smoother, [[0.9, 0.1], narrow, narrow, clear, narrow]) == [0, 0, 0, 1, 1]


def test_hysteresis_keeps_the_inner_smoothers_probabilities():
    plain, held = EmaSmoother(alpha=0.5), create_smoother("ema", alpha=0.5, margin=0.3, dwell=2)
    rng = np.random.default_rng(0)
    for _ in range(10):
        p = rng.dirichlet(np.ones(7), size=3)
        np.testing.assert_allclose(held.update([1, 2, 3], p, [1, 2, 3]), plain.update([1, 2, 3], p, [1, 2, 3]))


def test_hysteresis_is_per_track_and_a_new_or_reset_track_starts_on_its_argmax():
    smoother = LabelHysteresis(NoSmoothing(), dwell=2)
    a, b = np.array([0.9, 0.1]), np.array([0.2, 0.8])
    smoother.update([1, 2], np.stack([a, b]), [1, 2])
    smoother.update([1, 2], np.stack([b, b]), [1, 2])  # track 1: B leads once
    smoother.update([2], b[None], [1, 2])  # track 1 missed by the detector this frame: its streak is kept, not advanced
    np.testing.assert_array_equal(smoother.held_labels([2]), [1])
    smoother.update([1, 2], np.stack([b, a]), [1, 2])  # track 1: second frame of B; track 2: A once
    np.testing.assert_array_equal(smoother.held_labels([1, 2]), [1, 1])
    smoother.update([2], a[None], [2])  # the tracker forgot track 1
    smoother.update([1], a[None], [1, 2])  # a new track 1 starts on its own argmax
    np.testing.assert_array_equal(smoother.held_labels([1]), [0])
    smoother.reset()
    smoother.update([2], b[None], [2])
    np.testing.assert_array_equal(smoother.held_labels([2]), [1])


def test_no_hysteresis_is_the_plain_smoother_and_bad_settings_are_one_line_errors():
    assert isinstance(create_smoother("ema"), EmaSmoother) and create_smoother("none").held_labels([1]) is None
    for kwargs in ({"margin": 1.0}, {"margin": -0.1}, {"dwell": 0}):
        with pytest.raises(InputError, match="hysteresis|dwell") as caught:
            create_smoother("ema", **kwargs)
        assert "\n" not in str(caught.value)


def test_a_held_label_is_the_displayed_label_in_the_record_and_its_jsonl():
    labels = ("happy", "sad", "neutral")
    face = FaceResult(id=1, box=(0, 0, 10, 10), detection_score=0.9, labels=labels, probs=(0.2, 0.5, 0.3),
                      raw_probs=(0.1, 0.8, 0.1), held_label="neutral")
    record = face.to_dict()
    assert face.label == record["label"] == "neutral"
    assert face.confidence == pytest.approx(0.3) and record["confidence"] == pytest.approx(0.3)  # the probability of the shown label
    assert record["probs"] == {"happy": 0.2, "sad": 0.5, "neutral": 0.3} and record["raw_probs"]["sad"] == 0.8
    plain = FaceResult(id=1, box=(0, 0, 10, 10), detection_score=0.9, labels=labels, probs=(0.2, 0.5, 0.3))
    assert plain.to_dict()["label"] == "sad" and plain.confidence == pytest.approx(0.5)
    with pytest.raises(ValueError, match="held label"):
        FaceResult(id=1, box=(0, 0, 10, 10), detection_score=0.9, labels=labels, probs=(0.2, 0.5, 0.3), held_label="angry")


def test_cli_hysteresis_options_build_the_smoother(tiny_model):
    from emolive.realtime.cli import _recognizer, build_parser

    args = build_parser().parse_args(["annotate", "-o", "x.jpg", "--model", str(tiny_model), "--smooth", "ema",
                                      "--smooth-alpha", "0.5", "--hysteresis", "0.1", "--dwell", "4"])
    with _recognizer(args) as recognizer:
        smoother = recognizer.smoother
        assert isinstance(smoother, LabelHysteresis) and (smoother.margin, smoother.dwell) == (0.1, 4)
        assert isinstance(smoother.inner, EmaSmoother) and smoother.inner.alpha == 0.5




class _Alternating(NoSmoothing):
    """Makes class 0 and class 1 lead in turns of two frames, whatever the CNN says."""

    def __init__(self) -> None:
        self.calls = 0

    def update(self, ids, probs, active_ids, features=None):
        leader = (self.calls // 2) % 2
        self.calls += 1
        out = np.full_like(probs, 0.05)
        out[:, leader] = 1.0 - 0.05 * (probs.shape[1] - 1)
        return out


def test_a_stream_with_hysteresis_displays_and_writes_the_held_label(tiny_model, sample_bgr, tmp_path):
    clip = face_video(tmp_path / "c.mp4", sample_bgr, frames=10)
    with Recognizer(tiny_model, smooth=LabelHysteresis(_Alternating(), dwell=3)) as recognizer:
        faces = [face for result in recognizer.stream(str(clip)) for face in result.faces]
    assert len(faces) >= 8
    assert {int(np.argmax(face.probs)) for face in faces} == {0, 1}  # the probabilities alternate ...
    for face in faces:  # ... but the challenger never leads 3 frames in a row, so the first label is held throughout
        record = face.to_dict()
        assert face.label == record["label"] == face.labels[0]
        assert record["confidence"] == round(face.probs[0], 4)
    with Recognizer(tiny_model, smooth="ema", hysteresis=0.2, dwell=3) as recognizer:
        assert isinstance(recognizer.smoother, LabelHysteresis) and (recognizer.smoother.margin, recognizer.smoother.dwell) == (0.2, 3)


def test_auto_smoothing_uses_the_lstm_head_when_the_cnn_has_one_else_ema(tiny_model):
    from emolive.models.shipped import resolve_model_path

    with_head = create_smoother("auto", cnn_path=resolve_model_path("default"), margin=0.25, dwell=2)
    assert isinstance(with_head, LabelHysteresis) and isinstance(with_head.inner, LstmSmoother)
    assert isinstance(create_smoother("auto", cnn_path=tiny_model), EmaSmoother)  # no head beside the tiny model
    assert isinstance(create_smoother("auto"), EmaSmoother)
