"""Inference engines: run the emotion CNN on a batch of preprocessed faces.

An engine maps (N, 1, S, S) float32 to probabilities (N, num_classes). ONNX Runtime is the CPU
engine and the default; the model's own :class:`ModelInfo` (labels, preprocessing, temperature) is
read from the file, so the engine never guesses.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.models.errors import EngineUnavailableError, ModelError
from emolive.models.info import ModelInfo
from emolive.models.onnx_io import FEATURES_NAME, INPUT_NAME, open_onnx_session, read_onnx_info

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

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (N, num_classes) and, where the model provides them, penultimate features (N, F)."""
        return self.classify(batch), None

    def close(self) -> None:
        """Release the session."""

    def __enter__(self) -> InferenceEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OnnxRuntimeEngine(InferenceEngine):
    """ONNX Runtime on CPU (or CUDA when onnxruntime-gpu is installed and asked for)."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, *, threads: int = 0, providers: list[str] | None = None, spinning: bool = True) -> None:
        self.path = Path(path)
        self._session = open_onnx_session(self.path, threads=threads, providers=providers, spinning=spinning)
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
        self._features = FEATURES_NAME if any(o.name == FEATURES_NAME for o in outputs[1:]) else None

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run([self._output], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self._features is None or len(batch) == 0:
            return super().infer(batch)
        logits, features = self._session.run([self._output, self._features], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})
        return softmax(logits, self.info.temperature), features

    def close(self) -> None:
        self._session = None


@dataclass(frozen=True)
class EngineStatus:
    """Whether an engine runs on this machine; ``reason`` says why not (or what it runs on)."""

    name: str
    available: bool
    reason: str


def _onnxruntime_gpu_providers() -> list[str]:
    """ONNX Runtime's GPU execution providers usable here (onnxruntime-gpu installed and a GPU present)."""
    import onnxruntime as ort

    from .tensorrt_engine import gpu_name

    present = set(ort.get_available_providers())
    wanted = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in present]
    if not wanted or gpu_name() is None:
        return []
    if "TensorrtExecutionProvider" in wanted and importlib.util.find_spec("tensorrt") is None:
        wanted.remove("TensorrtExecutionProvider")  # the EP needs the TensorRT libraries at run time
    return wanted


def onnxruntime_providers() -> list[str]:
    """Execution providers for ONNX Runtime, fastest first: TensorRT/CUDA EPs where they work, then CPU."""
    return [*_onnxruntime_gpu_providers(), "CPUExecutionProvider"]


def available_engines() -> list[EngineStatus]:
    """Every engine name (except ``auto``) with whether it runs here and why not."""
    from .tensorrt_engine import tensorrt_status

    gpu = _onnxruntime_gpu_providers()
    statuses = [EngineStatus("onnxruntime", True, f"ONNX Runtime on {', '.join([*gpu, 'CPUExecutionProvider'])}")]
    ok, reason = tensorrt_status()
    statuses.append(EngineStatus("tensorrt", ok, reason))
    if importlib.util.find_spec("torch") is None:
        statuses.append(EngineStatus("torch", False, "PyTorch is not installed (pip install 'emolive[train]')"))
    else:
        statuses.append(EngineStatus("torch", True, "PyTorch (needs the model's .safetensors next to the .onnx)"))
    return statuses


def auto_engine_name() -> str:
    """What ``--engine auto`` picks: TensorRT when a GPU and TensorRT are present, else ONNX Runtime."""
    from .tensorrt_engine import tensorrt_status

    return "tensorrt" if tensorrt_status()[0] else "onnxruntime"


def create_engine(name: str, model_path: str | Path, *, threads: int = 0, spinning: bool = True) -> InferenceEngine:
    """Build the engine ``name`` for the model at ``model_path``; ``auto`` picks the fastest present.

    ``spinning=False``: ONNX Runtime's idle threads sleep between calls (see :func:`open_onnx_session`).

    ``auto`` is TensorRT when a GPU and the ``tensorrt`` extra are present, otherwise ONNX Runtime with
    its CUDA/TensorRT execution providers where onnxruntime-gpu and a GPU are there, otherwise ONNX
    Runtime on the CPU. An engine that cannot run here raises a one-line EngineUnavailableError.
    """
    if name == "auto":
        name = auto_engine_name()
    if name == "onnxruntime":
        return OnnxRuntimeEngine(model_path, threads=threads, providers=onnxruntime_providers(), spinning=spinning)
    if name == "tensorrt":
        from .tensorrt_engine import TensorRTEngine, tensorrt_status

        ok, reason = tensorrt_status()
        if not ok:
            raise EngineUnavailableError(f"engine 'tensorrt' is not available: {reason}; use --engine onnxruntime")
        return TensorRTEngine(model_path)
    if name == "torch":
        if importlib.util.find_spec("torch") is None:
            raise EngineUnavailableError("engine 'torch' is not available: PyTorch is not installed "
                                         "(pip install 'emolive[train]'); use --engine onnxruntime")
        from .torch_engine import TorchEngine

        return TorchEngine(model_path, threads=threads)
    raise EngineUnavailableError(f"unknown engine '{name}'; choose one of {', '.join(ENGINES)}")
