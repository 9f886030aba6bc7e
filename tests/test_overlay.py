"""The overlay: every face's box and "#id label 87%" tag stay readable inside the frame."""

import numpy as np
import pytest

from emolive.models.labels import EMOTIONS
from emolive.realtime.overlay import color_for, draw_faces
from emolive.realtime.records import FaceResult


def _face(box):
    probs = tuple(0.85 if name == "surprise" else 0.025 for name in EMOTIONS)
    return FaceResult(id=12, box=box, detection_score=0.9, labels=EMOTIONS, probs=probs)


@pytest.mark.parametrize("x", [0, 300, 600])
def test_the_whole_tag_is_drawn_inside_the_frame(x):
    canvas = draw_faces(np.zeros((360, 640, 3), np.uint8), [_face((x, 100, 40, 40))])
    tag = np.all(canvas[:100] == color_for("surprise"), axis=2)  # the filled tag sits above the box
    columns = np.flatnonzero(tag.any(axis=0))
    assert columns.size >= 100  # "#12 surprise 85%" is over 100 px wide at this size: none of it cut off
    assert columns[0] <= x  # the tag still starts at or left of the face it names
