"""Model metadata: what a model file says about itself.

Every shipped or exported model (ONNX and safetensors alike) carries one :class:`ModelInfo` as JSON
under the key ``emolive``: its architecture, label set, preprocessing, training data and measured
metrics. Inference reads labels and preprocessing from here, never from constants of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ModelError
from .labels import validate_labels
from .preprocess import PreprocessSpec

METADATA_KEY = "emolive"
TTA_MODES: tuple[str, ...] = ("none", "hflip", "hflip_zoom")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelInfo:
    """Self-description of a trained model, stored inside its weights file."""

    arch: str
    labels: tuple[str, ...]
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    training_data: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    temperature: float = 1.0
    test_time_augmentation: str = "none"
    version: str = "0.1.0"
    precision: str = "fp32"  # numeric precision of the weights/activations in this file (int8: quantized)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.test_time_augmentation not in TTA_MODES:
            raise ValueError(f"test_time_augmentation must be one of {TTA_MODES}, got {self.test_time_augmentation!r}")
        object.__setattr__(self, "labels", validate_labels(self.labels))
        if not self.arch:
            raise ValueError("arch must name a registered architecture")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT_VERSION,
            "arch": self.arch,
            "labels": list(self.labels),
            "preprocess": self.preprocess.to_dict(),
            "arch_kwargs": self.arch_kwargs,
            "training_data": self.training_data,
            "metrics": self.metrics,
            "temperature": self.temperature,
            "test_time_augmentation": self.test_time_augmentation,
            "version": self.version,
            "precision": self.precision,
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None, source: str) -> ModelInfo:
        """Parse the metadata JSON of ``source``; a missing or malformed entry raises ModelError."""
        if not text:
            raise ModelError(f"{source} has no '{METADATA_KEY}' metadata; export it with 'emo-live export' so it records labels and preprocessing")
        try:
            data = json.loads(text)
            return cls(
                arch=str(data["arch"]),
                labels=tuple(data["labels"]),
                preprocess=PreprocessSpec.from_dict(data.get("preprocess", {})),
                arch_kwargs=dict(data.get("arch_kwargs", {})),
                training_data=str(data.get("training_data", "")),
                metrics={str(k): float(v) for k, v in dict(data.get("metrics") or {}).items()},
                temperature=float(data.get("temperature", 1.0)),
                test_time_augmentation=str(data.get("test_time_augmentation", "none")),
                version=str(data.get("version", "")),
                precision=str(data.get("precision", "fp32")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"{source} has malformed '{METADATA_KEY}' metadata ({exc}); re-export the model with 'emo-live export'") from None
