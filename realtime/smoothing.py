"""Temporal smoothing of emotion probabilities, one state per tracked face.

State is keyed by track id, so one person's expression never leaks into another's, and a track's
state is dropped as soon as the tracker forgets the track.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

import numpy as np

SMOOTHERS: tuple[str, ...] = ("none", "ema")


class Smoother(ABC):
    """Turns per-frame probabilities of tracked faces into smoothed ones."""

    @abstractmethod
    def update(self, ids: Sequence[int], probs: np.ndarray, active_ids: Iterable[int]) -> np.ndarray:
        """Smoothed probabilities for this frame's faces (same order as ``ids``)."""

    def reset(self) -> None:
        """Forget every track's state."""


class NoSmoothing(Smoother):
    def update(self, ids: Sequence[int], probs: np.ndarray, active_ids: Iterable[int]) -> np.ndarray:
        return probs


class EmaSmoother(Smoother):
    """Exponential moving average per track: ``s = alpha * s + (1 - alpha) * p``; a new track starts at ``p``."""

    def __init__(self, alpha: float = 0.7) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        self.alpha = alpha
        self._state: dict[int, np.ndarray] = {}

    def update(self, ids: Sequence[int], probs: np.ndarray, active_ids: Iterable[int]) -> np.ndarray:
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


def create_smoother(name: str, *, alpha: float = 0.7) -> Smoother:
    from emolive.models.errors import InputError

    if name == "none":
        return NoSmoothing()
    if name == "ema":
        return EmaSmoother(alpha)
    raise InputError(f"unknown smoothing '{name}'; choose one of {', '.join(SMOOTHERS)}")
