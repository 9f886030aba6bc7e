"""PyTorch engine: run the model from its .safetensors weights on CPU or CUDA (needs emolive[train]).

Useful for checking an export against the network it came from, and on machines where PyTorch with
CUDA is present but TensorRT is not. Given an ``.onnx`` path it loads that model's ``.safetensors``
(the manifest's for a shipped model, else the file beside it) and takes labels, preprocessing,
temperature and test-time augmentation from the ONNX metadata, so its outputs match ONNX Runtime's on
an FP32 file. For an INT8 file it runs the FP32 network the file was quantized from.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from emolive.models.errors import ModelError, require

from .engines import InferenceEngine, softmax


def checkpoint_for(model_path: str | Path) -> Path:
    """The ``.safetensors`` file for ``model_path``: itself, the manifest's for a shipped model, or the sibling of an ``.onnx``."""
    from emolive.models.shipped import weights_for

    checkpoint = weights_for(model_path)
    if not checkpoint.is_file():
        raise ModelError(f"engine 'torch' needs the PyTorch weights {checkpoint}, which do not exist; "
                         "put the .safetensors next to the .onnx (emo-live train writes both) or use --engine onnxruntime")
    return checkpoint


class TorchEngine(InferenceEngine):
    """The registered network with its safetensors weights, in eval mode, on CUDA when available."""

    name = "torch"

    def __init__(self, path: str | Path, *, threads: int = 0, device: str | None = None) -> None:
        torch = require("torch", "train", "the 'torch' engine")
        from emolive.models.checkpoint import load_model
        from emolive.models.networks import LogitsAndFeatures, has_features, with_test_time_views

        self.path = Path(path)
        if self.path.suffix != ".safetensors" and not self.path.is_file():
            raise ModelError(f"model file {self.path} does not exist; pass --model with an existing .onnx or .safetensors file")
        self.checkpoint = checkpoint_for(self.path)
        model, info = load_model(self.checkpoint)
        if self.path.suffix == ".onnx":
            from emolive.models.onnx_io import read_onnx_info

            deployed = read_onnx_info(self.path)
            if (deployed.arch, deployed.labels, deployed.arch_kwargs) != (info.arch, info.labels, info.arch_kwargs):
                raise ModelError(f"{self.checkpoint} ({info.arch}) does not match {self.path} ({deployed.arch}); "
                                 "pass the .safetensors the ONNX model was exported from")
            # An INT8 file's network is its FP32 weights: PyTorch runs those, with the file's views and temperature.
            info = replace(deployed, precision="fp32")
        else:
            info = replace(info, precision="fp32")
        self.info = info
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = with_test_time_views(model, info.test_time_augmentation)
        self._model = model.eval().to(self.device)
        # The same (logits, features) pair the exported ONNX graph gives, for the LSTM smoother.
        self._with_features = LogitsAndFeatures(self._model).eval() if has_features(self._model) else None
        self._torch = torch

    def logits(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            return self._model(x).float().cpu().numpy()

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self._with_features is None or len(batch) == 0:
            return super().infer(batch)
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            logits, features = self._with_features(x)
        return softmax(logits.float().cpu().numpy(), self.info.temperature), features.float().cpu().numpy()

    def close(self) -> None:
        self._model = None
