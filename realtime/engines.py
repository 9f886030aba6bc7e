"""Inference engines: run the emotion CNN on a batch of preprocessed faces.

An engine maps (N, 1, S, S) float32 to probabilities (N, num_classes). ONNX Runtime is the CPU
engine and the default; the model's own :class:`ModelInfo` (labels, preprocessing, temperature) is
read from the file, so the engine never guesses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from emolive.models.errors import EngineUnavailableError, ModelError
from emolive.models.info import ModelInfo
from emolive.models.onnx_io import INPUT_NAME, open_onnx_session, read_onnx_info

ENGINES: tuple[str, ...] = ("auto", "onnxruntime", "tensorrt", "torch")
"""Engine names users can ask for; ``available_engines()`` says which run here."""


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits.astype(np.float32) / np.float32(temperature)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class InferenceEngine(ABC):
    """Classify batches of preprocessed faces; a context manager that owns its session."""

    name: str = ""
    info: ModelInfo

    @abstractmethod
    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Raw scores (N, num_classes) for a preprocessed batch (N, 1, S, S)."""

    def classify(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, num_classes), temperature-scaled as recorded in the model."""
        if len(batch) == 0:
            return np.empty((0, self.info.num_classes), dtype=np.float32)
        return softmax(self.logits(batch), self.info.temperature)

    def close(self) -> None:
        """Release the session."""

    def __enter__(self) -> InferenceEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OnnxRuntimeEngine(InferenceEngine):
    """ONNX Runtime on CPU (or CUDA when onnxruntime-gpu is installed and asked for)."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, *, threads: int = 0, providers: list[str] | None = None) -> None:
        self.path = Path(path)
        self._session = open_onnx_session(self.path, threads=threads, providers=providers)
        self.info = read_onnx_info(self._session)
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            raise ModelError(f"{self.path} has inputs {[i.name for i in inputs]}; an emolive model has one input named '{INPUT_NAME}'")
        shape = inputs[0].shape
        size = self.info.preprocess.size
        if len(shape) != 4 or shape[1] != 1 or shape[2] != size or shape[3] != size:
            raise ModelError(f"{self.path} expects input shape {shape} but its metadata says (N, 1, {size}, {size}); re-export it")
        outputs = self._session.get_outputs()
        if outputs[0].shape[-1] != self.info.num_classes:
            raise ModelError(f"{self.path} outputs {outputs[0].shape[-1]} classes but its metadata lists {self.info.num_classes} labels; re-export it")
        self._output = outputs[0].name

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run([self._output], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def close(self) -> None:
        self._session = None


_NOT_BUILT = {
    "tensorrt": "the TensorRT engine is not part of this emolive yet (it needs an NVIDIA GPU and the 'tensorrt' package)",
    "torch": "the PyTorch engine is not part of this emolive yet",
}


def create_engine(name: str, model_path: str | Path, *, threads: int = 0) -> InferenceEngine:
    """Build the engine ``name`` for the ONNX model at ``model_path``; ``auto`` picks the fastest present."""
    if name in ("auto", "onnxruntime"):
        return OnnxRuntimeEngine(model_path, threads=threads)
    if name in _NOT_BUILT:
        raise EngineUnavailableError(f"engine '{name}' is not available: {_NOT_BUILT[name]}; use --engine onnxruntime")
    raise EngineUnavailableError(f"unknown engine '{name}'; choose one of {', '.join(ENGINES)}")
