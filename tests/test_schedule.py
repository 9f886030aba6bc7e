"""Detection schedule: following faces with optical flow between detector runs, re-detection, shot cuts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emolive.models.errors import InputError
from emolive.realtime.following import FaceFollower, SceneMonitor, gray_frame
from emolive.realtime.pipeline import Recognizer
from emolive.realtime.records import Frame
from emolive.realtime.schedule import DetectionClock, DetectSchedule


def _canvas(face: np.ndarray, x: int, y: int, size: tuple[int, int] = (480, 360), fill: int = 90) -> np.ndarray:
    canvas = np.full((size[1], size[0], 3), fill, np.uint8)
    canvas[y:y + face.shape[0], x:x + face.shape[1]] = face
    return canvas


@pytest.fixture(scope="module")
def face(sample_bgr: np.ndarray) -> np.ndarray:
    return cv2.resize(sample_bgr[40:260, 130:330], (150, 165))


def test_follower_moves_a_box_with_the_face(face):
    before, after = gray_frame(_canvas(face, 100, 80)), gray_frame(_canvas(face, 107, 76))
    [moved] = FaceFollower().follow(before, after, [(110, 90, 130, 140)])
    assert moved.quality > 0.8
    assert abs(moved.box[0] - 117) <= 1 and abs(moved.box[1] - 86) <= 1
    assert abs(moved.box[2] - 130) <= 3 and abs(moved.box[3] - 140) <= 3


def test_follower_scales_the_box_when_the_face_comes_closer(face):
    bigger = cv2.resize(face, None, fx=1.1, fy=1.1)
    before, after = gray_frame(_canvas(face, 100, 80)), gray_frame(_canvas(bigger, 93, 72))
    [moved] = FaceFollower().follow(before, after, [(100, 80, 150, 165)])
    assert 1.04 < moved.box[2] / 150 < 1.16


def test_follower_reports_a_lost_face(face):
    before, after = gray_frame(_canvas(face, 100, 80)), gray_frame(np.full((360, 480, 3), 90, np.uint8))
    [lost] = FaceFollower().follow(before, after, [(110, 90, 130, 140)])
    assert lost.quality < FaceFollower().min_quality


def test_scene_monitor_tells_motion_from_cuts(face, sample_bgr):
    monitor = SceneMonitor()
    assert monitor.update(gray_frame(_canvas(face, 100, 80))) == (False, False)
    assert monitor.update(gray_frame(_canvas(face, 103, 80))) == (False, False)  # small motion
    other_shot = cv2.resize(sample_bgr, (480, 360))
    changed, cut = monitor.update(gray_frame(other_shot))
    assert changed and cut


def _frames(images: list[np.ndarray]) -> list[Frame]:
    return [Frame(i, i / 30.0, "clip", image) for i, image in enumerate(images)]


class _CountingDetector:
    """Wraps a detector and records on which frames it ran."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.calls = 0
        self._detect = recognizer.detector.detect
        recognizer.detector.detect = self

    def __call__(self, image: np.ndarray):
        self.calls += 1
        return self._detect(image)


def test_detector_runs_every_n_frames_and_faces_are_followed_in_between(tiny_model, face):
    images = [_canvas(face, 60 + 3 * i, 90) for i in range(12)]
    with Recognizer(tiny_model, detect_every=4) as recognizer:
        counter = _CountingDetector(recognizer)
        results = list(recognizer.stream(_frames(images)))
    assert counter.calls == 3
    assert [r.detected for r in results] == [i % 4 == 0 for i in range(12)]
    assert all(len(r.faces) == 1 and r.faces[0].id == 1 for r in results)
    # followed boxes keep up with the face, which moves 3 px to the right per frame
    lefts = [r.faces[0].box[0] for r in results]
    assert all(b > a for a, b in zip(lefts[:3], lefts[1:4]))
    assert all(r.timings["detect"] == 0.0 for r in results if not r.detected)


def test_every_frame_is_detected_with_detect_every_one(tiny_model, face):
    images = [_canvas(face, 60 + 3 * i, 90) for i in range(6)]
    with Recognizer(tiny_model, detect_every=1) as recognizer:
        counter = _CountingDetector(recognizer)
        results = list(recognizer.stream(_frames(images)))
    assert counter.calls == 6 and all(r.detected for r in results)


def test_a_lost_face_is_redetected_at_once(tiny_model, face):
    images = [_canvas(face, 60, 90), _canvas(face, 62, 90), np.full((360, 480, 3), 90, np.uint8), np.full((360, 480, 3), 90, np.uint8)]
    with Recognizer(tiny_model, detect_every=10) as recognizer:
        results = list(recognizer.stream(_frames(images)))
    assert [r.detected for r in results] == [True, False, True, True]
    assert [len(r.faces) for r in results] == [1, 1, 0, 0]


def test_a_shot_cut_starts_new_identities(tiny_model, face, sample_bgr):
    shot_a = [_canvas(face, 60 + 2 * i, 90) for i in range(4)]
    # second shot: the same face at the same place, on a very different background
    shot_b = [_canvas(face, 66 + 2 * i, 90, fill=230) for i in range(4)]
    with Recognizer(tiny_model, detect_every=10) as recognizer:
        results = list(recognizer.stream(_frames(shot_a + shot_b)))
    ids = [r.faces[0].id for r in results]
    assert ids == [1] * 4 + [2] * 4  # IoU alone would have kept id 1 across the cut
    assert results[4].detected
    with Recognizer(tiny_model, detect_every=1) as recognizer:  # the detector on every frame: cuts still end tracks
        assert [r.faces[0].id for r in recognizer.stream(_frames(shot_a + shot_b))] == [1] * 4 + [2] * 4


def test_detect_every_must_be_positive(tiny_model):
    with pytest.raises(InputError, match="detect_every"):
        Recognizer(tiny_model, detect_every=0)


@pytest.mark.parametrize("text, schedule", [("3", DetectSchedule(3, 3)), ("3:12", DetectSchedule(3, 12)), (" 1 ", DetectSchedule(1, 1)),
                                            (5, DetectSchedule(5, 5))])
def test_schedules_are_written_n_or_n_colon_m(text, schedule):
    assert DetectSchedule.parse(text) == schedule
    assert DetectSchedule.parse(str(schedule)) == schedule


@pytest.mark.parametrize("text, message", [("3:2", "at least the shortest"), ("x", "not N or N:M"), ("3:", "not N or N:M"),
                                           ("0:4", "at least 1")])
def test_bad_schedules_are_named(text, message):
    with pytest.raises(InputError, match=message):
        DetectSchedule.parse(text)


def test_the_gap_doubles_while_detections_confirm_and_snaps_back_on_news():
    clock = DetectionClock(DetectSchedule(2, 8))
    gaps = []
    for confirmed in (True, True, True, False, True):
        clock.detected(confirmed=confirmed)
        gaps.append(clock.gap)
    assert gaps == [4, 8, 8, 2, 4]
    clock.reset()
    assert clock.gap == 2


def _two_faces(face: np.ndarray, x: int, second: bool) -> np.ndarray:
    canvas = _canvas(face, x, 90, size=(640, 360))
    if second:
        canvas[90:90 + face.shape[0], 440:440 + face.shape[1]] = face
    return canvas


def test_an_adaptive_schedule_detects_less_while_nothing_changes_and_catches_a_new_face(tiny_model, face):
    # one face drifting right for 7 frames, then a second one steps in (and stays)
    images = [_two_faces(face, 40 + 2 * i, second=i >= 7) for i in range(17)]
    with Recognizer(tiny_model, detect_every="2:8") as recognizer:
        results = list(recognizer.stream(_frames(images)))
    detected = [i for i, r in enumerate(results) if r.detected]
    # first frame; then gaps 2, 4, 8 while the detector only confirms the followed face; the newcomer is
    # found at the next scheduled run (frame 14), which brings the gap back to 2
    assert detected == [0, 2, 6, 14, 16]
    assert [len(r.faces) for r in results] == [1] * 14 + [2] * 3
    assert {face.id for face in results[-1].faces} == {1, 2}


def test_an_empty_scene_is_checked_on_the_schedule_not_every_frame(tiny_model, face):
    empty = np.full((360, 480, 3), 90, np.uint8)
    images = [empty] * 10 + [_canvas(face, 60, 90)] * 3
    with Recognizer(tiny_model, detect_every="2:4") as recognizer:
        counter = _CountingDetector(recognizer)
        results = list(recognizer.stream(_frames(images)))
    assert [i for i, r in enumerate(results) if r.detected] == [0, 2, 6, 10, 12]
    assert counter.calls == 5
    assert [len(r.faces) for r in results] == [0] * 10 + [1] * 3
