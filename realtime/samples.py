"""The embedded default input: a real, public-domain face photo that ships inside an installed package.

scikit-image bundles NASA's portrait of astronaut Eileen Collins (public domain), so ``emo-live
annotate`` without an input works on any fresh install, with no camera and no download.
"""

from __future__ import annotations

import cv2
import numpy as np

from collections.abc import Iterator

from .records import Frame

SAMPLE_NAME = "astronaut"
SAMPLE_SOURCE = "skimage.data.astronaut (NASA, public domain)"


def sample_image() -> np.ndarray:
    """The sample photo as a BGR uint8 array (512 x 512)."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def sample_frames() -> list[Frame]:
    return [Frame(index=0, time=0.0, source=SAMPLE_SOURCE, image=sample_image())]


def synthetic_frames(count: int, *, faces: int = 3, size: tuple[int, int] = (640, 360), fps: float = 30.0) -> Iterator[Frame]:
    """``count`` frames with ``faces`` copies of the sample face, evenly spaced, drifting over a plain background."""
    width, height = size
    side = max(32, min(width // (faces + 1), height // 2))
    face = cv2.resize(sample_image()[50:250, 140:320], (side, int(side * 1.1)))
    slot = width // faces
    for index in range(count):
        canvas = np.full((height, width, 3), 96, np.uint8)
        drift = int(0.25 * (slot - side) * np.sin(index / 15.0))
        for k in range(faces):
            x = int(np.clip(k * slot + (slot - side) // 2 + drift, 0, width - face.shape[1]))
            y = int(np.clip(height // 2 - face.shape[0] // 2 + (40 if k % 2 else -40), 0, height - face.shape[0]))
            canvas[y:y + face.shape[0], x:x + face.shape[1]] = face
        yield Frame(index=index, time=index / fps, source="synthetic", image=canvas)
