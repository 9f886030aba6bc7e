"""The embedded default input: a real, public-domain face photo that ships inside an installed package.

scikit-image bundles NASA's portrait of astronaut Eileen Collins (public domain), so ``emo-live
annotate`` without an input works on any fresh install, with no camera and no download.
"""

from __future__ import annotations

import cv2
import numpy as np

from .records import Frame

SAMPLE_NAME = "astronaut"
SAMPLE_SOURCE = "skimage.data.astronaut (NASA, public domain)"


def sample_image() -> np.ndarray:
    """The sample photo as a BGR uint8 array (512 x 512)."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def sample_frames() -> list[Frame]:
    return [Frame(index=0, time=0.0, source=SAMPLE_SOURCE, image=sample_image())]
