"""Safetensors weights with embedded :class:`ModelInfo` (no pickle anywhere)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ModelError, OutputError
from .info import METADATA_KEY, ModelInfo

if TYPE_CHECKING:
    from torch import nn


def save_weights(model: nn.Module, info: ModelInfo, path: str | os.PathLike[str], *, fp16: bool = False) -> Path:
    """Write the model's state dict and metadata to ``path`` atomically (temporary file, then rename).

    ``fp16`` stores floating-point tensors as float16 (half the file); :func:`load_model` loads them
    back into the float32 network.
    """
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    tmp = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(tmp), metadata={METADATA_KEY: info.to_json()})
        os.replace(tmp, path)
    except Exception as exc:  # OSError, or safetensors' own error type for a failed write
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) else str(exc).strip().splitlines()[0]
        raise OutputError(f"cannot write {path} ({reason}); choose another output path") from None
    return path


def read_weights_info(path: str | os.PathLike[str]) -> ModelInfo:
    """Read only the metadata of a safetensors file."""
    from safetensors import safe_open

    path = Path(path)
    _check_exists(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for truncated/foreign files
        raise ModelError(f"{path} is not a readable safetensors file ({exc}); re-download or re-export it") from None
    return ModelInfo.from_json(metadata.get(METADATA_KEY), str(path))


def load_model(path: str | os.PathLike[str]) -> tuple[nn.Module, ModelInfo]:
    """Build the registered architecture named in the file's metadata and load its weights (eval mode)."""
    from safetensors.torch import load_file

    from .registry import UnknownArchitecture, create_model

    info = read_weights_info(path)
    try:
        model = create_model(info.arch, num_classes=info.num_classes, **info.arch_kwargs)
    except UnknownArchitecture as exc:  # for an ensemble, the name of the member's architecture
        raise ModelError(f"{path} needs architecture '{exc.name}', which this emolive does not have; upgrade emolive") from None
    except (TypeError, ValueError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path} records arch_kwargs that architecture '{info.arch}' does not accept ({reason}); "
                         "re-export the checkpoint") from None
    state = load_file(str(path))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "state dict mismatch"
        raise ModelError(f"{path} does not match architecture '{info.arch}' with {info.num_classes} labels ({first}); re-export the checkpoint") from None
    return model.eval(), info


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; pass --model with an existing .onnx or .safetensors file")
