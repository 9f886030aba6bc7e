"""The emotion label sets, defined once.

Index order is FER2013's class id order; every model, dataset reader and report uses these tuples
instead of retyping names.
"""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013 classes, index = FER2013 class id."""

EMOTION_TO_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}


def validate_labels(labels: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Return labels as a tuple after checking they are non-empty, unique strings."""
    labels = tuple(labels)
    if not labels or len(set(labels)) != len(labels) or not all(isinstance(x, str) and x for x in labels):
        raise ValueError(f"labels must be unique non-empty strings, got {labels!r}")
    return labels
