"""The emotion label sets, defined once.

Index order is FER2013's class id order; every model, dataset reader and report uses these tuples
instead of retyping names.
"""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013 classes, index = FER2013 class id."""

EMOTION_TO_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}

FERPLUS_EMOTIONS: tuple[str, ...] = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt")
"""FER+ classes (Barsoum et al. 2016), index = column order of ``fer2013new.csv`` (neutral, happiness,
surprise, sadness, anger, disgust, fear, contempt), named with the same words as :data:`EMOTIONS`."""

LABEL_SETS: dict[str, tuple[str, ...]] = {"fer2013": EMOTIONS, "ferplus": FERPLUS_EMOTIONS}
"""Label sets by name; a model's :class:`~emolive.models.info.ModelInfo` ``labels`` equal one of them."""


def label_set_name(labels: tuple[str, ...]) -> str | None:
    """The name of the known label set ``labels`` equals (order included), or None."""
    return next((name for name, known in LABEL_SETS.items() if tuple(labels) == known), None)


def validate_labels(labels: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Return labels as a tuple after checking they are non-empty, unique strings."""
    labels = tuple(labels)
    if not labels or len(set(labels)) != len(labels) or not all(isinstance(x, str) and x for x in labels):
        raise ValueError(f"labels must be unique non-empty strings, got {labels!r}")
    return labels
