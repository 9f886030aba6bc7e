"""What a temporal head file says about itself, and finding the head trained for a given CNN.

A temporal head (see :mod:`emolive.models.temporal`) is an ONNX graph that takes one frame's CNN
features per tracked face plus the LSTM state and returns logits and the next state. Its metadata
(JSON under the key ``emolive_temporal``) records the label set, the feature and state sizes and the
sha256 of the CNN ONNX file whose features it was trained on: features of another CNN mean nothing
to it, so a head is only ever used with that exact file. Needs only ONNX Runtime.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError
from .labels import validate_labels

TEMPORAL_METADATA_KEY = "emolive_temporal"
TEMPORAL_SUFFIX = ".temporal.onnx"
FEATURES_INPUT, H_INPUT, C_INPUT = "features", "h", "c"
LOGITS_OUTPUT, H_OUTPUT, C_OUTPUT = "logits", "h_out", "c_out"


@dataclass(frozen=True)
class TemporalInfo:
    """Self-description of a temporal head, stored inside its ONNX file."""

    labels: tuple[str, ...]
    feature_dim: int
    hidden_size: int
    projection: int
    cnn_sha256: str
    cnn_name: str = ""
    training_data: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    version: str = "0.1.0"

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", validate_labels(self.labels))
        if self.feature_dim <= 0 or self.hidden_size <= 0 or self.projection <= 0:
            raise ValueError(f"feature_dim, hidden_size and projection must be positive, got {self.feature_dim}, {self.hidden_size}, {self.projection}")
        if len(self.cnn_sha256) != 64:
            raise ValueError(f"cnn_sha256 must be a 64-character hex digest, got {self.cnn_sha256!r}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_json(self) -> str:
        return json.dumps({"labels": list(self.labels), "feature_dim": self.feature_dim, "hidden_size": self.hidden_size,
                           "projection": self.projection, "cnn_sha256": self.cnn_sha256, "cnn_name": self.cnn_name,
                           "training_data": self.training_data, "metrics": self.metrics, "training": self.training,
                           "version": self.version}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None, source: str) -> TemporalInfo:
        if not text:
            raise ModelError(f"{source} has no '{TEMPORAL_METADATA_KEY}' metadata; it is not a temporal head written by 'emo-live train-temporal'")
        try:
            data = json.loads(text)
            return cls(labels=tuple(data["labels"]), feature_dim=int(data["feature_dim"]), hidden_size=int(data["hidden_size"]),
                       projection=int(data["projection"]), cnn_sha256=str(data["cnn_sha256"]), cnn_name=str(data.get("cnn_name", "")),
                       training_data=str(data.get("training_data", "")),
                       metrics={str(k): float(v) for k, v in dict(data.get("metrics") or {}).items()},
                       training=dict(data.get("training", {})), version=str(data.get("version", "")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"{source} has malformed '{TEMPORAL_METADATA_KEY}' metadata ({exc}); retrain it with 'emo-live train-temporal'") from None


def read_temporal_info(session_or_path) -> TemporalInfo:
    """The :class:`TemporalInfo` of a temporal head, from an ONNX Runtime session or a path."""
    import onnxruntime as ort

    from .onnx_io import open_onnx_session

    if isinstance(session_or_path, ort.InferenceSession):
        session, source = session_or_path, "the temporal head"
    else:
        session, source = open_onnx_session(session_or_path), str(session_or_path)
    return TemporalInfo.from_json(session.get_modelmeta().custom_metadata_map.get(TEMPORAL_METADATA_KEY), source)


def temporal_head_path(cnn_path: str | os.PathLike[str]) -> Path:
    """Where the temporal head of the CNN at ``cnn_path`` lives: ``NAME.temporal.onnx`` beside ``NAME.onnx``."""
    cnn_path = Path(cnn_path)
    return cnn_path.with_name(cnn_path.name.removesuffix(".onnx") + TEMPORAL_SUFFIX)


def find_temporal_head(cnn_path: str | os.PathLike[str]) -> Path:
    """The temporal head trained on the CNN file ``cnn_path``; ModelError if there is none or it belongs to another CNN."""
    from .shipped import file_sha256

    cnn_path = Path(cnn_path)
    head = temporal_head_path(cnn_path)
    if not head.is_file():
        raise ModelError(f"--smooth lstm needs a temporal head for {cnn_path.name}, but {head} does not exist; "
                         f"train one with 'emo-live train-temporal --data FER2013 --model {cnn_path} -o RUN_DIR --install' or use --smooth ema")
    info = read_temporal_info(head)
    sha = file_sha256(cnn_path)
    if info.cnn_sha256 != sha:
        raise ModelError(f"temporal head {head.name} was trained on another CNN (sha256 {info.cnn_sha256[:12]}..., this one {sha[:12]}...); "
                         f"retrain it with 'emo-live train-temporal --data FER2013 --model {cnn_path} -o RUN_DIR --install' or use --smooth ema")
    return head
