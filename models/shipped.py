"""The models that ship inside the package, and resolving ``--model`` arguments to files."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path

from .errors import ModelError


@dataclass(frozen=True)
class ShippedModel:
    """A model file inside ``emolive/models/weights`` with its expected sha256 (from its card)."""

    name: str
    onnx: str
    safetensors: str
    card: str
    sha256: str
    temporal: str = ""
    """The CNN's temporal head (``--smooth lstm``) beside it, if one ships."""
    quantized_from: str = ""
    """For an INT8 file: the shipped FP32 model it was quantized from (what engines that cannot run it build from)."""
    safetensors_sha256: str = ""
    """The expected sha256 of ``safetensors`` (checked when ``--engine torch`` or an export reads it)."""


def weights_dir() -> Path:
    return Path(str(resources.files("emolive.models") / "weights"))


@cache
def _manifest() -> dict[str, ShippedModel]:
    path = weights_dir() / "manifest.json"
    known = {f.name for f in fields(ShippedModel)} - {"name"}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        models = {name: ShippedModel(name=name, **{k: v for k, v in entry.items() if k in known})  # newer keys are ignored
                  for name, entry in data["models"].items()}
        for alias, target in data.get("aliases", {}).items():
            models[alias] = models[target]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"the shipped models' list {path} is missing or damaged ({type(exc).__name__}); reinstall emolive") from None
    return models


def shipped_models() -> dict[str, ShippedModel]:
    """Name (and alias, e.g. ``default``) -> shipped model."""
    return dict(_manifest())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_shipped_file(path: Path) -> bool:
    """Whether ``path`` lies in the package's weights folder."""
    return path.parent.resolve() == weights_dir().resolve()


def _entry_of(path: Path) -> ShippedModel | None:
    """The manifest entry of a shipped ONNX file (None for a file outside the package's weights)."""
    if not is_shipped_file(path):
        return None
    return next((entry for entry in _manifest().values() if entry.onnx == path.name), None)


def weights_for(onnx_path: str | os.PathLike[str]) -> Path:
    """The PyTorch weights of an ONNX model: the manifest's for a shipped file, else ``NAME.safetensors`` beside it.

    Shipped models that share a network (the same weights with more test-time views, or their INT8
    version) name one ``.safetensors`` in the manifest instead of carrying a copy each.
    """
    path = Path(onnx_path)
    if path.suffix == ".safetensors":
        return path
    entry = _entry_of(path)
    if entry is None:
        return path.with_suffix(".safetensors")
    weights = weights_dir() / entry.safetensors
    if entry.safetensors_sha256 and weights.is_file():
        _check_sha256(weights, entry.safetensors_sha256, entry.name)
    return weights


def _check_sha256(path: Path, expected: str, name: str) -> None:
    actual = file_sha256(path)
    if actual != expected:
        raise ModelError(f"shipped model '{name}' is damaged ({path.name}: sha256 {actual[:12]}... != {expected[:12]}...); reinstall emolive")


def fp32_source(onnx_path: str | os.PathLike[str]) -> Path | None:
    """The FP32 file a shipped INT8 model was quantized from (None for anything else)."""
    entry = _entry_of(Path(onnx_path))
    return resolve_model_path(entry.quantized_from) if entry is not None and entry.quantized_from else None


def resolve_model_path(model: str | Path | None) -> Path:
    """Map a shipped model name (``default``, ...) or a path to an existing ONNX file.

    Shipped files are checked against the sha256 recorded in the manifest, so a damaged install
    fails with a clear message instead of silently wrong predictions.
    """
    name = str(model) if model is not None else "default"
    shipped = _manifest()
    if name in shipped:
        entry = shipped[name]
        path = weights_dir() / entry.onnx
        if not path.is_file():
            raise ModelError(f"shipped model '{name}' is missing ({path}); reinstall emolive")
        _check_sha256(path, entry.sha256, name)
        return path
    path = Path(name).expanduser()
    if not path.exists():
        raise ModelError(f"model '{name}' is neither a shipped model ({', '.join(sorted(shipped))}) nor an existing file; pass a shipped name or a path to an .onnx file")
    if path.is_dir():
        raise ModelError(f"model path {path} is a folder; pass the .onnx file inside it")
    return path
