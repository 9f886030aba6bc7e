"""emolive.models: the contract between training and inference.

Labels, the preprocessing spec and its one function, model metadata, the model registry, weights and
ONNX I/O, and the shipped models. Importing this package needs no PyTorch.
"""

from .errors import (
    DataError,
    DependencyError,
    EmoliveError,
    EngineUnavailableError,
    InputError,
    ModelError,
    OutputError,
    SourceError,
)
from .info import ModelInfo
from .labels import EMOTIONS
from .preprocess import Box, PreprocessSpec, preprocess_faces
from .shipped import resolve_model_path, shipped_models

__all__ = [
    "EMOTIONS",
    "Box",
    "DataError",
    "DependencyError",
    "EmoliveError",
    "EngineUnavailableError",
    "InputError",
    "ModelError",
    "ModelInfo",
    "OutputError",
    "PreprocessSpec",
    "SourceError",
    "preprocess_faces",
    "resolve_model_path",
    "shipped_models",
]
