"""Temporal smoothing of emotion probabilities, one state per tracked face.

State is keyed by track id, so one person's expression never leaks into another's, and a track's
state is dropped as soon as the tracker forgets the track. ``none`` passes probabilities through,
``ema`` averages them exponentially, ``lstm`` runs the CNN's trained temporal head on its features.
:class:`LabelHysteresis` goes on top of any of them and holds each track's displayed label until a
challenger has beaten it by a margin for a number of consecutive frames.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from emolive.models.errors import InputError, ModelError

from .engines import softmax

log = logging.getLogger(__name__)

SMOOTHERS: tuple[str, ...] = ("auto", "none", "ema", "lstm")
DEFAULT_ALPHA = 0.7
"""EMA's weight of the past frames."""

DEFAULT_SMOOTH, DEFAULT_HYSTERESIS, DEFAULT_DWELL = "auto", 0.25, 2
"""``auto`` is the CNN's LSTM head when one was trained for that exact CNN file, else EMA. Chosen by
``emo-live eval-temporal --split PublicTest`` (README, 'Temporal smoothing'): with the default CNN, LSTM
head + label hysteresis 0.25 held for 2 frames is the most stable setting that keeps accuracy on PublicTest sequences
above no smoothing (+1.3 points there); on PrivateTest sequences it is +0.2 points with a median transition latency of
1 frame (the LSTM alone +1.9), and it cuts flicker on the real clips 2.8x."""


class Smoother(ABC):
    """Turns per-frame probabilities of tracked faces into smoothed ones."""

    @abstractmethod
    def update(self, ids: Sequence[int], probs: np.ndarray, active_ids: Iterable[int], features: np.ndarray | None = None) -> np.ndarray:
        """Smoothed probabilities for this frame's faces (same order as ``ids``).

        ``features`` are the CNN's penultimate features of the same faces when the engine provides them.
        """

    def reset(self) -> None:
        """Forget every track's state."""

    def held_labels(self, ids: Sequence[int]) -> np.ndarray | None:
        """Class index displayed for each of the last update's faces, or None when that is the argmax of its probabilities."""
        return None


class NoSmoothing(Smoother):
    def update(self, ids: Sequence[int], probs: np.ndarray, active_ids: Iterable[int], features: np.ndarray | None = None) -> np.ndarray:
        return probs


class EmaSmoother(Smoother):
    """Exponential moving average per track: ``s = alpha * s + (1 - alpha) * p``; a new track starts at ``p``."""

    def __init__(self, alpha: float = DEFAULT_ALPHA) -> None:
        if not 0.0 <= alpha < 1.0:
            raise InputError(f"--smooth-alpha must be in [0, 1) (the share of the previous frames), got {alpha}")
        self.alpha = alpha
        self._state: dict[int, np.ndarray] = {}

    def update(self, ids: Sequence[int], probs: np.ndarray, active_ids: Iterable[int], features: np.ndarray | None = None) -> np.ndarray:
        out = np.empty_like(probs)
        for row, track_id in enumerate(ids):
            previous = self._state.get(track_id)
            current = probs[row] if previous is None else self.alpha * previous + (1.0 - self.alpha) * probs[row]
            self._state[track_id] = current
            out[row] = current
        alive = set(active_ids)
        for track_id in [t for t in self._state if t not in alive]:
            del self._state[track_id]
        return out

    def reset(self) -> None:
        self._state.clear()


class LstmSmoother(Smoother):
    """The CNN's temporal head (an LSTM over its penultimate features), one ONNX Runtime call per frame.

    All of a frame's tracked faces go through the head in one batch; each track's (h, c) state starts at
    zero when the track appears and is dropped when the tracker forgets it. Needs the engine's features
    (``features`` of :meth:`update`), so the CNN must have been exported with its ``features`` output.
    """

    def __init__(self, head_path: str | os.PathLike[str], *, labels: Sequence[str] | None = None, threads: int = 1) -> None:
        from emolive.models.onnx_io import open_onnx_session
        from emolive.models.temporal_info import read_temporal_info

        self.path = Path(head_path)
        self._session = open_onnx_session(self.path, threads=threads)
        self.info = read_temporal_info(self._session)
        if labels is not None and tuple(labels) != self.info.labels:
            raise ModelError(f"temporal head {self.path.name} predicts {', '.join(self.info.labels)} but the CNN has {', '.join(labels)}; retrain it with 'emo-live train-temporal'")
        self._state: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._zeros = np.zeros(self.info.hidden_size, dtype=np.float32)

    def update(self, ids: Sequence[int], probs: np.ndarray, active_ids: Iterable[int], features: np.ndarray | None = None) -> np.ndarray:
        from emolive.models.temporal_info import C_INPUT, FEATURES_INPUT, H_INPUT

        alive = set(active_ids)
        for track_id in [t for t in self._state if t not in alive]:
            del self._state[track_id]
        if len(ids) == 0:
            return probs
        if features is None or len(features) != len(ids) or features.shape[1] != self.info.feature_dim:
            got = "no features" if features is None else f"features of shape {features.shape}"
            raise ModelError(f"--smooth lstm needs the CNN's {self.info.feature_dim}-long penultimate features for each face, got {got}; "
                             "re-export the CNN with 'emo-live export' (it adds the 'features' output) or use --smooth ema")
        states = [self._state.get(track_id, (self._zeros, self._zeros)) for track_id in ids]
        h = np.stack([s[0] for s in states])
        c = np.stack([s[1] for s in states])
        logits, h, c = self._session.run(None, {FEATURES_INPUT: np.ascontiguousarray(features, dtype=np.float32), H_INPUT: h, C_INPUT: c})
        for row, track_id in enumerate(ids):
            self._state[track_id] = (h[row], c[row])
        return softmax(logits).astype(probs.dtype, copy=False)

    def reset(self) -> None:
        self._state.clear()


class LabelHysteresis(Smoother):
    """Holds each track's displayed label against brief challengers; probabilities come from ``inner`` unchanged.

    A new track shows the argmax of its smoothed probabilities. After that the displayed label ``h``
    changes only when, on ``dwell`` consecutive frames of the track, the leading label ``l`` beats it by
    more than ``margin`` (``p[l] - p[h] > margin``); the display then becomes the leader of that frame.
    ``margin=0, dwell=1`` is the plain argmax. The held label is dropped with the track.
    """

    def __init__(self, inner: Smoother, *, margin: float = 0.0, dwell: int = 1) -> None:
        if not 0.0 <= margin < 1.0:
            raise InputError(f"--hysteresis must be a probability margin in [0, 1), got {margin}")
        if dwell < 1:
            raise InputError(f"--dwell must be at least 1 frame (1 = switch on the first frame the challenger leads), got {dwell}")
        self.inner = inner
        self.margin = margin
        self.dwell = dwell
        self._state: dict[int, tuple[int, int]] = {}  # track id -> (held class index, frames the challenger has led by the margin)

    def update(self, ids: Sequence[int], probs: np.ndarray, active_ids: Iterable[int], features: np.ndarray | None = None) -> np.ndarray:
        active_ids = list(active_ids)
        smoothed = self.inner.update(ids, probs, active_ids, features=features)
        leaders = smoothed.argmax(1) if len(ids) else ()
        for track_id, row, leader in zip(ids, smoothed, leaders):
            leader = int(leader)
            state = self._state.get(track_id)
            if state is None:
                self._state[track_id] = (leader, 0)
                continue
            held, streak = state
            streak = streak + 1 if leader != held and row[leader] - row[held] > self.margin else 0
            self._state[track_id] = (leader, 0) if streak >= self.dwell else (held, streak)
        alive = set(active_ids)
        for track_id in [t for t in self._state if t not in alive]:
            del self._state[track_id]
        return smoothed

    def held_labels(self, ids: Sequence[int]) -> np.ndarray:
        return np.array([self._state[track_id][0] for track_id in ids], dtype=np.int64)

    def reset(self) -> None:
        self.inner.reset()
        self._state.clear()


def create_smoother(name: str, *, alpha: float | None = None, margin: float = 0.0, dwell: int = 1, cnn_path: str | os.PathLike[str] | None = None,
                    labels: Sequence[str] | None = None) -> Smoother:
    """The smoother ``name``; ``lstm`` loads the temporal head trained for the CNN file ``cnn_path``.

    ``alpha`` is EMA's weight of the past (default :data:`DEFAULT_ALPHA`); given with another smoother it is
    ignored with a warning. ``margin`` > 0 or ``dwell`` > 1 puts :class:`LabelHysteresis` on top of it.
    """
    asked = name
    if name == "auto":
        name = "ema"
        if cnn_path is not None:
            from emolive.models.temporal_info import find_temporal_head

            try:
                find_temporal_head(cnn_path)
                name = "lstm"
            except ModelError:
                pass
    if alpha is not None and name != "ema":
        picked = f" (--smooth {asked} picked {name})" if asked != name else ""
        log.warning("--smooth-alpha %g applies to EMA smoothing only; it is ignored with --smooth %s%s", alpha, name, picked)
    if name == "none":
        smoother: Smoother = NoSmoothing()
    elif name == "ema":
        smoother = EmaSmoother(DEFAULT_ALPHA if alpha is None else alpha)
    elif name == "lstm":
        from emolive.models.temporal_info import find_temporal_head

        if cnn_path is None:
            raise InputError("--smooth lstm needs the CNN model file to find its temporal head; use an ONNX model (engine onnxruntime) or --smooth ema")
        smoother = LstmSmoother(find_temporal_head(cnn_path), labels=labels)
    else:
        raise InputError(f"unknown smoothing '{name}'; choose one of {', '.join(SMOOTHERS)}")
    if margin != 0.0 or dwell != 1:
        return LabelHysteresis(smoother, margin=margin, dwell=dwell)
    return smoother
