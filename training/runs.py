"""Find a trained model's files: its runnable ONNX, its safetensors weights and its training run.

A model is named by a shipped name (``default``), an ``.onnx`` or ``.safetensors`` file, or a run
folder written by ``emo-live train`` (``best.safetensors``, ``history.json``, ``summary.json``,
``best.onnx`` once training ends). Weights without an ONNX file next to them are exported on the fly
into a temporary folder, so a run still training can be evaluated.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emolive.models.errors import ModelError, require
from emolive.models.shipped import resolve_model_path, shipped_models, weights_for


@dataclass(frozen=True)
class ModelFiles:
    """Where one model's files are; ``onnx`` may be a temporary export of ``safetensors``."""

    name: str
    onnx: Path
    safetensors: Path | None
    run: Path | None
    exported: bool


def _run_of(folder: Path) -> Path | None:
    return folder if (folder / "history.json").is_file() or (folder / "summary.json").is_file() else None


def _export(weights: Path, folder: str) -> Path:
    require("torch", "train", f"evaluating {weights.name} (exported to ONNX on the fly)")
    from emolive.models.checkpoint import load_model
    from emolive.models.onnx_io import export_onnx

    model, info = load_model(weights)
    return export_onnx(model, info, Path(folder) / f"{weights.stem}.onnx")


@contextmanager
def open_model_files(spec: str | os.PathLike[str], run: str | os.PathLike[str] | None = None) -> Iterator[ModelFiles]:
    """Resolve ``spec`` (shipped name, .onnx, .safetensors or run folder); ``run`` overrides the detected run folder."""
    text = str(spec)
    path = Path(text).expanduser()
    run_dir = Path(run) if run is not None else None
    if run_dir is not None and not (run_dir / "history.json").is_file():
        raise ModelError(f"run folder {run_dir} has no history.json; pass --run with a folder written by emo-live train")
    onnx: Path | None
    weights: Path | None = None
    if text not in shipped_models() and path.is_dir():
        onnx, weights = path / "best.onnx", path / "best.safetensors"
        if not weights.is_file() and not onnx.is_file():
            raise ModelError(f"run folder {path} has neither best.onnx nor best.safetensors yet; wait for an epoch to improve or pass a model file")
        if not weights.is_file():
            weights = None
        # best.onnx is exported when training ends; while it runs, best.safetensors is newer
        if not onnx.is_file() or (weights is not None and weights.stat().st_mtime > onnx.stat().st_mtime):
            onnx = None
        name, run_dir = path.resolve().name, run_dir or _run_of(path)
    elif path.suffix == ".safetensors":
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist; pass --model with an existing .onnx or .safetensors file")
        onnx, weights, name = None, path, path.stem
        run_dir = run_dir or _run_of(path.parent)
    else:
        onnx = resolve_model_path(text)
        weights = weights_for(onnx)
        weights = weights if weights.is_file() else None
        name, run_dir = onnx.stem, run_dir or _run_of(onnx.parent)
    if run_dir is not None and name in ("best", "last"):
        name = run_dir.resolve().name
    if onnx is not None:
        yield ModelFiles(name, onnx, weights, run_dir, exported=False)
        return
    assert weights is not None
    with tempfile.TemporaryDirectory(prefix="emolive-export-") as folder:
        yield ModelFiles(name, _export(weights, folder), weights, run_dir, exported=True)


def read_history(run: Path | None) -> list[dict[str, Any]]:
    """Per-epoch records of a training run (empty when unknown)."""
    if run is None or not (run / "history.json").is_file():
        return []
    try:
        history = json.loads((run / "history.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {run / 'history.json'} ({exc}); is the run folder complete?") from None
    return history if isinstance(history, list) else []


def read_summary(run: Path | None) -> dict[str, Any]:
    """summary.json of a finished run (empty while it trains or when unknown)."""
    if run is None or not (run / "summary.json").is_file():
        return {}
    try:
        return json.loads((run / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


_CARD_WALL = re.compile(r"Wall time:\s*([0-9.]+)\s*min for\s*([0-9]+)\s*epochs")


def training_time(files: ModelFiles, metrics: dict[str, float]) -> tuple[float | None, int | None, str]:
    """(wall seconds, epochs, where from): run summary, else run history (still training), else model metadata, else model card."""
    summary = read_summary(files.run)
    if summary.get("wall_seconds") is not None:
        return float(summary["wall_seconds"]), summary.get("epochs_run"), "summary.json"
    history = read_history(files.run)
    if history and history[-1].get("wall_seconds") is not None:
        return float(history[-1]["wall_seconds"]), len(history), "history.json (training in progress)"
    if "train_wall_seconds" in metrics:
        epochs = metrics.get("train_epochs")
        return float(metrics["train_wall_seconds"]), int(epochs) if epochs else None, "model metadata"
    card = files.onnx.with_suffix(".md") if not files.exported else None
    if card is not None and card.is_file():
        match = _CARD_WALL.search(card.read_text(encoding="utf-8", errors="replace"))
        if match:
            return float(match.group(1)) * 60.0, int(match.group(2)), "model card"
    return None, None, "unknown"
