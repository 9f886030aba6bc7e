"""Detectors: a golden face photo, an empty result on a face-free image, wrong use."""

import numpy as np
import pytest

from emolive.models.errors import InputError
from emolive.realtime.detectors import DETECTORS, create_detector


@pytest.mark.parametrize("name", ["mediapipe", "mediapipe-short", "haar"])
def test_finds_the_one_face_in_the_sample_portrait(name, sample_bgr):
    with create_detector(name) as detector:
        found = detector.detect(sample_bgr)
    assert len(found) == 1
    x, y, w, h = found[0].box
    # Eileen Collins' face lies around x 170-280, y 60-180 in the 512x512 portrait.
    assert 150 < x + w / 2 < 260 and 70 < y + h / 2 < 170
    assert 0.0 < found[0].score <= 1.0


@pytest.mark.parametrize("name", ["mediapipe", "haar"])
def test_no_face_in_a_flat_or_noise_image(name):
    noise = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    with create_detector(name) as detector:
        assert detector.detect(np.full((360, 640, 3), 127, np.uint8)) == []
        assert detector.detect(noise) == []


@pytest.mark.parametrize("name", ["mediapipe", "haar", "none"])
def test_accepts_gray_bgra_and_16_bit(name, sample_bgr):
    import cv2

    gray = cv2.cvtColor(sample_bgr, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(sample_bgr, cv2.COLOR_BGR2BGRA)
    deep = sample_bgr.astype(np.uint16) * 257
    with create_detector(name) as detector:
        for image in (gray, bgra, deep):
            assert len(detector.detect(image)) >= 1


def test_none_detector_is_the_whole_image():
    with create_detector("none") as detector:
        assert detector.whole_image
        (found,) = detector.detect(np.zeros((30, 40, 3), np.uint8))
    assert found.box == (0, 0, 40, 30)


def test_unknown_detector_names_the_choices():
    with pytest.raises(InputError, match=", ".join(DETECTORS)):
        create_detector("yolo")


def test_auto_falls_back_to_haar_when_mediapipe_cannot_load(monkeypatch, caplog):
    import emolive.realtime.detectors as detectors
    from emolive.models.errors import DependencyError

    def broken(**kwargs):
        raise DependencyError("the MediaPipe detector needs the 'mediapipe' package")

    monkeypatch.setattr(detectors, "MediaPipeDetector", broken)
    with create_detector("auto") as detector:
        assert detector.name == "haar"
    assert "falling back to the Haar detector" in caplog.text
