"""Synthetic face-video sequences from FER2013 stills, for training and evaluating temporal smoothing.

FER2013 has no video, so a "video" of one tracked face is imitated in two steps:

1. **Views** (:func:`render_views`): each still is rendered several times the way a detector would hand
   it over frame after frame: the crop box jitters in position and scale around the face (cut from a
   border-padded copy by the shared :func:`preprocess_faces`, through its box argument), with brightness,
   contrast, blur and sensor noise; some views carry an occluder (a hand or object across the face).
   :func:`view_features` runs them through the CNN's ONNX graph, the same engine call the runtime uses.
2. **Sequences** (:func:`plan_sequence`): a frame-by-frame plan of which still and which view each frame
   shows. A sequence is made of segments (one still each, 0.6-3 s at 30 fps); at a change point it switches
   to a still with another label (an expression change). Inside a segment a view is held for a few
   frames (consecutive video frames are near-identical), and short occlusions (2-6 frames) happen.

Limits: a change of still also changes identity, and expressions switch at once instead of over a few frames.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from emolive.models.errors import DataError, InputError
from emolive.models.preprocess import PreprocessSpec, preprocess_faces

PAD = 16
"""Border (pixels) added around a 48x48 still so jittered crops have image content to cut from."""


@dataclass(frozen=True)
class ViewJitter:
    """Per-view perturbation ranges; fractions are of the face side, intensities in 8-bit levels."""

    shift: float = 0.05
    scale: float = 0.08
    brightness: float = 25.0
    contrast: float = 0.2
    blur_prob: float = 0.3
    blur_sigma: float = 1.2
    noise_std: float = 6.0
    occluder: tuple[float, float] = (0.25, 0.45)


@dataclass(frozen=True)
class SequencePlan:
    """Which still (``image``) and which rendered view (``view``) each frame shows, and its true ``label``."""

    image: np.ndarray
    view: np.ndarray
    label: np.ndarray

    @property
    def change_points(self) -> np.ndarray:
        """Frame indices where the true label differs from the previous frame's."""
        return np.flatnonzero(np.diff(self.label) != 0) + 1

    def __len__(self) -> int:
        return len(self.label)


def check_counts(args: argparse.Namespace, least: dict[str, int]) -> None:
    """A one-line InputError naming the first option (by its ``dest``) below its smallest allowed value."""
    for dest, minimum in least.items():
        value = getattr(args, dest)
        if value < minimum:
            raise InputError(f"--{dest.replace('_', '-')} must be at least {minimum}, got {value}")


def require_two_classes(labels: np.ndarray, what: str, fix: str) -> None:
    """A one-line DataError unless ``labels`` hold two classes or more: every sequence changes expression between segments."""
    classes = len(np.unique(labels))
    if classes < 2:
        raise DataError(f"{what} has {len(labels)} still(s) of {classes} class(es); sequences need expression changes, so {fix}")


def jittered_view(image: np.ndarray, spec: PreprocessSpec, rng: np.random.Generator, jitter: ViewJitter, *,
                  occluded: bool) -> np.ndarray:
    """One perturbed rendering of a 48x48 still as network input (1, 1, S, S), via :func:`preprocess_faces`."""
    size = image.shape[0]
    padded = cv2.copyMakeBorder(image, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE).astype(np.float32)
    contrast = 1.0 + rng.uniform(-jitter.contrast, jitter.contrast)
    padded = (padded - padded.mean()) * contrast + padded.mean() + rng.uniform(-jitter.brightness, jitter.brightness)
    if rng.random() < jitter.blur_prob:
        padded = cv2.GaussianBlur(padded, (0, 0), rng.uniform(0.5, jitter.blur_sigma))
    padded += rng.normal(0.0, rng.uniform(0.0, jitter.noise_std), padded.shape)
    if occluded:
        side = int(round(size * rng.uniform(*jitter.occluder)))
        x0, y0 = PAD + rng.integers(0, size - side + 1), PAD + rng.integers(0, size - side + 1)
        padded[y0:y0 + side, x0:x0 + side] = rng.uniform(20.0, 200.0) + rng.normal(0.0, 8.0, (side, side))
    padded = np.clip(padded, 0, 255).astype(np.uint8)
    # The box whose margin-enlarged square crop is exactly the still, then jittered like a detector box.
    base = size / (1.0 + 2.0 * spec.margin)
    side = base * (1.0 + rng.uniform(-jitter.scale, jitter.scale))
    cx = PAD + size / 2.0 + rng.uniform(-jitter.shift, jitter.shift) * size
    cy = PAD + size / 2.0 + rng.uniform(-jitter.shift, jitter.shift) * size
    box = (int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), int(round(side)), int(round(side)))
    return preprocess_faces(padded, [box], spec)


def render_views(images: np.ndarray, spec: PreprocessSpec, *, clean_views: int, occluded_views: int, seed: int,
                 jitter: ViewJitter = ViewJitter()) -> np.ndarray:
    """Network inputs (N, V, 1, S, S) for N stills: V = clean_views + occluded_views (occluded ones last)."""
    rng = np.random.default_rng(seed)
    views = clean_views + occluded_views
    out = np.empty((len(images), views, 1, spec.size, spec.size), dtype=np.float32)
    for i, image in enumerate(images):
        for v in range(views):
            out[i, v] = jittered_view(image, spec, rng, jitter, occluded=v >= clean_views)[0]
    return out


def view_features(engine, images: np.ndarray, *, clean_views: int, occluded_views: int, seed: int, batch_images: int = 64,
                  jitter: ViewJitter = ViewJitter(), progress: bool = False, desc: str = "views") -> tuple[np.ndarray, np.ndarray]:
    """CNN features (N, V, F) and probabilities (N, V, C) of every rendered view, through ``engine.infer``."""
    views = clean_views + occluded_views
    features: np.ndarray | None = None
    probs = np.empty((len(images), views, engine.info.num_classes), dtype=np.float32)
    for start in tqdm(range(0, len(images), batch_images), desc=desc, unit="batch", disable=not progress, leave=False):
        chunk = images[start:start + batch_images]
        batch = render_views(chunk, engine.info.preprocess, clean_views=clean_views, occluded_views=occluded_views,
                             seed=seed * 1_000_003 + start, jitter=jitter)
        p, f = engine.infer(batch.reshape(-1, *batch.shape[2:]))
        if f is None:
            from emolive.models.errors import ModelError

            raise ModelError("the CNN has no 'features' output; re-export it with 'emo-live export' to train or evaluate a temporal head")
        if features is None:
            features = np.empty((len(images), views, f.shape[1]), dtype=np.float32)
        features[start:start + len(chunk)] = f.reshape(len(chunk), views, -1)
        probs[start:start + len(chunk)] = p.reshape(len(chunk), views, -1)
    assert features is not None
    return features, probs


def plan_sequence(labels: np.ndarray, length: int, rng: np.random.Generator, *, clean_views: int, occluded_views: int,
                  segment: tuple[int, int] = (18, 90), hold: tuple[int, int] = (1, 4), occlusion_rate: float = 0.3,
                  occlusion_frames: tuple[int, int] = (2, 6)) -> SequencePlan:
    """A frame plan over stills with class ids ``labels``: segments of ``segment`` frames, each a still whose
    label differs from the previous segment's; each view is held ``hold`` frames; with probability
    ``occlusion_rate`` per segment an occlusion of ``occlusion_frames`` frames (only if occluded views exist)."""
    if len(np.unique(labels)) < 2:
        raise ValueError("sequences need stills of at least two labels")
    image = np.empty(length, dtype=np.int64)
    view = np.empty(length, dtype=np.int64)
    t = 0
    current = -1
    while t < length:
        candidate = int(rng.integers(len(labels)))
        while current >= 0 and labels[candidate] == labels[current]:
            candidate = int(rng.integers(len(labels)))
        current = candidate
        end = min(length, t + int(rng.integers(segment[0], segment[1] + 1)))
        image[t:end] = current
        u = t
        while u < end:
            run = int(rng.integers(hold[0], hold[1] + 1))
            view[u:min(end, u + run)] = rng.integers(clean_views)
            u += run
        if occluded_views and rng.random() < occlusion_rate and end - t > occlusion_frames[0]:
            span = int(rng.integers(occlusion_frames[0], min(occlusion_frames[1], end - t) + 1))
            start = t + int(rng.integers(0, end - t - span + 1))
            view[start:start + span] = clean_views + rng.integers(occluded_views)
        t = end
    return SequencePlan(image=image, view=view, label=labels[image])


def plan_sequences(labels: np.ndarray, count: int, length: int, seed: int, **kwargs) -> list[SequencePlan]:
    rng = np.random.default_rng(seed)
    return [plan_sequence(labels, length, rng, **kwargs) for _ in range(count)]


def gather(plans: list[SequencePlan], pool: np.ndarray) -> np.ndarray:
    """Per-frame rows of ``pool`` (N, V, ...) for each plan: (B, T, ...)."""
    return np.stack([pool[plan.image, plan.view] for plan in plans])
