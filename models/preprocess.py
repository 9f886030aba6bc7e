"""The preprocessing contract between training and inference.

:func:`preprocess_faces` is the one function that turns an image plus face boxes into the network's
input tensor. Training calls it on FER2013 images (the whole 48x48 image is the face crop), evaluation
and the realtime pipeline call it on detector boxes. Its parameters live in a :class:`PreprocessSpec`
stored inside every model file, so a model always gets the preprocessing it was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from .errors import InputError

Box = tuple[int, int, int, int]
"""A face box in pixels: (x, y, width, height), top-left origin."""


@dataclass(frozen=True)
class PreprocessSpec:
    """How a face becomes the network input: a grayscale square crop, resized and normalized.

    ``margin`` is the fraction of the detector box's longer side added on every side before the crop
    is made square, so detector boxes (tight around the face) match FER2013's looser framing.
    Normalization is ``(pixel / 255 - mean) / std``.
    """

    size: int = 48
    margin: float = 0.1
    mean: float = 0.5
    std: float = 0.25

    def __post_init__(self) -> None:
        if not 8 <= self.size <= 1024:
            raise ValueError(f"size must be in [8, 1024], got {self.size}")
        if not 0.0 <= self.margin <= 2.0:
            raise ValueError(f"margin must be in [0, 2], got {self.margin}")
        if self.std <= 0:
            raise ValueError(f"std must be positive, got {self.std}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        known = {k: data[k] for k in ("size", "margin", "mean", "std") if k in data}
        return cls(size=int(known.get("size", 48)), margin=float(known.get("margin", 0.1)),
                   mean=float(known.get("mean", 0.5)), std=float(known.get("std", 0.25)))


FLOAT_IMAGE_LIMIT = 2.0
"""Float images above this are refused (0-255 scale); values a little above 1 (interpolation overshoot) are clipped."""


def validate_image(image: object) -> np.ndarray:
    """Check that ``image`` is a non-empty gray, BGR or BGRA array of a supported dtype; InputError if not."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected a numpy image, got {type(image).__name__}; pass an array from cv2.imread or a frame source")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise InputError(f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}; pass a gray, BGR or BGRA image")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"image has zero size {image.shape}; pass a non-empty image")
    if image.dtype != np.uint8 and image.dtype != np.uint16 and image.dtype.kind != "f":
        raise InputError(f"unsupported image dtype {image.dtype}; pass uint8, uint16 or float images")
    if image.dtype.kind == "f":
        peak = float(np.max(np.nan_to_num(image, nan=0.0), initial=0.0))
        if peak > FLOAT_IMAGE_LIMIT:  # a 0-255 image in floats: clipping to [0, 1] would make it white
            raise InputError(f"float image values reach {peak:g}, but float images must be in [0, 1]; divide by 255 or pass uint8")
    return image


def to_gray_uint8(image: np.ndarray) -> np.ndarray:
    """Convert an OpenCV-style image (gray, BGR, BGRA; uint8, uint16 or float in [0, 1]) to gray uint8."""
    validate_image(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype.kind == "f":
        image = (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if image.ndim == 2:
        return image
    code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
    return cv2.cvtColor(image, code)


def square_crop_box(box: Box, margin: float) -> Box:
    """The square box (x, y, side, side) centred on ``box`` and enlarged by ``margin`` on every side."""
    x, y, w, h = box
    side = max(1, int(round(max(w, h) * (1.0 + 2.0 * margin))))
    cx, cy = x + w / 2.0, y + h / 2.0
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side, side


def crop_face(gray: np.ndarray, box: Box, spec: PreprocessSpec, margin: float | None = None) -> np.ndarray:
    """Cut the square, margin-enlarged crop of ``box`` out of a gray image, resized to ``spec.size``.

    Parts of the crop outside the image are filled by replicating the border, so faces cut by the
    frame edge keep their position inside the crop. ``margin`` overrides ``spec.margin``.
    """
    x0, y0, side, _ = square_crop_box(box, spec.margin if margin is None else margin)
    height, width = gray.shape
    x1, y1 = x0 + side, y0 + side
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx0 >= cx1 or cy0 >= cy1:
        crop = np.full((side, side), int(gray.mean()), dtype=np.uint8)
    else:
        crop = gray[cy0:cy1, cx0:cx1]
        pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
        if any(pads):
            crop = cv2.copyMakeBorder(crop, *pads, borderType=cv2.BORDER_REPLICATE)
    return resize_square(crop, spec.size)


def resize_square(crop: np.ndarray, size: int) -> np.ndarray:
    """Resize a crop to size x size: area averaging when shrinking, bilinear when enlarging."""
    if crop.shape[0] == size and crop.shape[1] == size:
        return crop
    shrinking = crop.shape[0] > size or crop.shape[1] > size
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def normalize(crops: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 crops (N, S, S) -> float32 network input (N, 1, S, S)."""
    scale = np.float32(1.0 / (255.0 * spec.std))
    shift = np.float32(spec.mean / spec.std)
    out = crops.astype(np.float32)
    out *= scale
    out -= shift
    return out[:, None, :, :]


def preprocess_faces(image: np.ndarray, boxes: Sequence[Box] | None, spec: PreprocessSpec) -> np.ndarray:
    """Turn an image and its face boxes into the network input, shape (N, 1, size, size) float32.

    ``boxes=None`` treats the whole image as one face crop, squared by replicating its border and
    with no margin (how FER2013 images are used, and the ``--detector none`` mode). An empty box list
    gives an empty (0, 1, size, size) batch.
    """
    gray = to_gray_uint8(image)
    if boxes is None:
        height, width = gray.shape
        crops = crop_face(gray, (0, 0, width, height), spec, margin=0.0)[None]
    elif len(boxes) == 0:
        crops = np.empty((0, spec.size, spec.size), dtype=np.uint8)
    else:
        crops = np.stack([crop_face(gray, tuple(int(v) for v in box), spec) for box in boxes])
    return normalize(crops, spec)
