"""``emo-live export``: turn a checkpoint or model into what a deployment runs.

Formats: ``onnx`` (FP32, dynamic batch, metadata), ``onnx-int8`` (static INT8 QDQ, calibrated on
FER2013 Training), ``engine`` (a TensorRT serialized engine; needs an NVIDIA GPU) and ``triton`` (a
Triton Inference Server model repository: onnxruntime backend, plus a TensorRT-backend model for
``--precision fp16|int8`` where a GPU is present). The source is a ``.safetensors`` checkpoint, an
``.onnx`` model or a shipped model name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from emolive.models.errors import EngineUnavailableError, InputError, require
from emolive.models.info import TTA_MODES

FORMATS: tuple[str, ...] = ("onnx", "onnx-int8", "engine", "triton")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
INT8_TARGETS: tuple[str, ...] = ("cpu", "tensorrt")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote, and notes for the user (e.g. a TensorRT model that could not be built here)."""

    format: str
    paths: tuple[Path, ...]
    notes: tuple[str, ...] = ()


def source_onnx(source: str | os.PathLike[str], work: Path, tta: str | None = None) -> Path:
    """An FP32-or-INT8 emolive ONNX file for ``source``: exported from a .safetensors (with test-time views ``tta``
    when given, else those the checkpoint records), or the .onnx itself."""
    text = str(source)
    if text.endswith(".safetensors"):
        return checkpoint_to_onnx(Path(text), work / f"{Path(text).stem}.onnx", tta=tta)
    from emolive.models.shipped import resolve_model_path

    path = resolve_model_path(text)
    if path.suffix.lower() != ".onnx":
        raise InputError(f"{path} is neither a .safetensors checkpoint nor an .onnx model; pass one of those or a shipped model name")
    return path


def checkpoint_to_onnx(checkpoint: Path, output: Path, *, tta: str | None = None, weights_fp16: bool = False) -> Path:
    """Export a .safetensors checkpoint; ``tta`` replaces the test-time views it records (none, hflip, hflip_zoom)."""
    require("torch", "train", "exporting a .safetensors checkpoint")
    from emolive.models.checkpoint import load_model
    from emolive.models.onnx_io import export_onnx

    model, info = load_model(checkpoint)
    if tta is not None:
        info = replace(info, test_time_augmentation=tta)
    return export_onnx(model, info, output, weights_fp16=weights_fp16)


def _checkpoint_of(source: str | os.PathLike[str]) -> Path:
    """The .safetensors weights behind ``source`` (a checkpoint, an .onnx model or a shipped name), for rebuilding its graph."""
    from emolive.models.shipped import resolve_model_path, weights_for

    if str(source).endswith(".safetensors"):
        return Path(source)  # loading it reports a missing or foreign file
    weights = weights_for(resolve_model_path(source))
    if not weights.is_file():
        raise InputError(f"--tta rebuilds the graph from the network's weights, but {source} has no {weights.name} beside it; "
                         "pass the .safetensors checkpoint")
    return weights


def _network_of(src: Path) -> Path:
    """A shipped CPU INT8 model stands for its network: exports other than CPU INT8 start from the FP32 model it came from."""
    from emolive.models.shipped import fp32_source

    return fp32_source(src) or src


def export_model(source: str | os.PathLike[str], output: str | os.PathLike[str], *, fmt: str = "onnx", precision: str | None = None,
                 max_batch: int = 64, data: str | os.PathLike[str] | None = None, calibration_size: int = 1000,
                 target: str = "cpu", name: str | None = None, progress: Callable[[str], None] | None = None,
                 weights_fp16: bool = False, tta: str | None = None) -> ExportResult:
    """Export ``source`` to ``output`` in format ``fmt``; see the module docstring. ``weights_fp16`` (``--format onnx``
    only) stores the large weights as float16: half the file, computed in float32. ``tta`` builds these test-time views
    into the graph instead of those recorded, from the .safetensors weights behind ``source``."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    if tta is not None and tta not in TTA_MODES:
        raise InputError(f"unknown --tta '{tta}'; choose one of {', '.join(TTA_MODES)}")
    if tta is not None:
        source = _checkpoint_of(source)
    if weights_fp16 and fmt != "onnx":
        raise InputError(f"--weights-fp16 stores an FP32 model's weights as float16 and applies to --format onnx, not {fmt}; drop it")
    if precision is not None and precision not in PRECISIONS:
        raise InputError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
    if not 1 <= max_batch <= 4096:
        raise InputError(f"--max-batch must be in [1, 4096], got {max_batch}")
    if target not in INT8_TARGETS:
        raise InputError(f"unknown INT8 target '{target}'; choose one of {', '.join(INT8_TARGETS)}")
    output = Path(output)
    if fmt != "triton":  # a file: its folder must be creatable and the name free of a folder (triton writes a folder)
        from .sinks import prepare_output

        prepare_output(output)
    say = progress or (lambda message: None)
    if fmt == "engine":
        _require_tensorrt()  # fail before any slow step
    with tempfile.TemporaryDirectory(prefix="emolive-export-") as tmp:
        work = Path(tmp)
        if fmt == "onnx":
            if precision not in (None, "fp32"):
                raise InputError(f"--format onnx writes FP32; for {precision} use --format onnx-int8 (int8) or --format engine/triton (fp16)")
            return ExportResult(fmt, (_export_fp32(source, output, work, weights_fp16, tta),))
        src = source_onnx(source, work, tta)
        if not (fmt == "onnx-int8" and target == "cpu"):
            src = _network_of(src)
        if fmt == "onnx-int8":
            if precision not in (None, "int8"):
                raise InputError(f"--format onnx-int8 writes INT8, not {precision}; drop --precision or use --format onnx")
            path, notes = _int8(src, output, data, calibration_size, target, say)
            return ExportResult(fmt, (path,), notes)
        if fmt == "engine":
            return _engine(src, output, precision or "fp16", max_batch, data, calibration_size, work, say)
        return _triton(src, output, precision or "fp32", max_batch, data, calibration_size, name, work, say)


def _export_fp32(source: str | os.PathLike[str], output: Path, work: Path, weights_fp16: bool, tta: str | None) -> Path:
    text = str(source)
    if text.endswith(".safetensors"):
        return checkpoint_to_onnx(Path(text), output, tta=tta, weights_fp16=weights_fp16)
    src = _network_of(source_onnx(source, work))
    from emolive.models.onnx_io import read_onnx_info

    read_onnx_info(src)  # refuse foreign or broken files before copying
    if weights_fp16:
        _halve_weights(src, output)
    else:
        _atomic_copy(src, output)
    return output


def _halve_weights(src: Path, output: Path) -> None:
    """Copy an ONNX model with its large float32 weights stored as float16 (weights already stored so stay as they are)."""
    onnx = require("onnx", "train", "storing ONNX weights as float16")
    from emolive.models.onnx_io import store_weights_fp16

    from .sinks import atomic_path, prepare_output

    proto = onnx.load(str(src))
    store_weights_fp16(proto)
    onnx.checker.check_model(proto)
    with atomic_path(prepare_output(output)) as tmp:
        onnx.save_model(proto, str(tmp))


def _int8(src: Path, output: Path, data, calibration_size: int, target: str, say) -> tuple[Path, tuple[str, ...]]:
    from emolive.calibration.int8 import CPU_SETTINGS, TENSORRT_SETTINGS, build_int8_model, read_model_info

    if data is None:
        raise InputError("INT8 export calibrates on FER2013 Training: pass --data with fer2013.csv(.gz), the image tarball or a folder")
    if read_model_info(src).precision == "int8":
        if target == "tensorrt":
            _check_tensorrt_flavour(src)
        _atomic_copy(src, output)
        return output, (f"{src} is already INT8; copied",)
    settings = TENSORRT_SETTINGS if target == "tensorrt" else CPU_SETTINGS
    path, candidates = build_int8_model(src, output, data, calibration_size=calibration_size, settings=settings, progress=say)
    notes = tuple(f"{c.method} calibration: PublicTest accuracy {c.public_accuracy:.4f}" + (" (kept)" if c.path == path else "")
                  for c in candidates)
    return path, notes


def _check_tensorrt_flavour(src: Path) -> None:
    import onnx

    from emolive.realtime.tensorrt_engine import check_tensorrt_int8

    check_tensorrt_int8({p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}, src)


def _require_tensorrt() -> None:
    from .tensorrt_engine import tensorrt_status

    ok, reason = tensorrt_status()
    if not ok:
        raise EngineUnavailableError(f"a TensorRT engine can only be built on a machine with an NVIDIA GPU and TensorRT: {reason}; "
                                     "use --format onnx, onnx-int8 or triton here")


def _plan(src: Path, precision: str, max_batch: int, data, calibration_size: int, work: Path, say) -> Path:
    """A serialized TensorRT engine in ``work`` (an int8 one from a symmetric QDQ model made here if needed)."""
    from emolive.calibration.int8 import read_model_info

    from .tensorrt_engine import build_serialized_engine, resolve_precision

    info = read_model_info(src)
    if precision == "int8" and info.precision != "int8":
        src, _ = _int8(src, work / f"{src.stem}.int8-trt.onnx", data, calibration_size, "tensorrt", say)
        info = read_model_info(src)
    elif info.precision == "int8":
        _check_tensorrt_flavour(src)
    precision = resolve_precision(precision, info.precision)
    say(f"building a {precision} TensorRT engine for 1..{max_batch} faces")
    plan = work / f"{src.stem}.{precision}.plan"
    plan.write_bytes(build_serialized_engine(src, precision, max_batch, info.preprocess.size))
    return plan


def _engine(src: Path, output: Path, precision: str, max_batch: int, data, calibration_size: int, work: Path, say) -> ExportResult:
    plan = _plan(src, precision, max_batch, data, calibration_size, work, say)
    _atomic_copy(plan, output)
    return ExportResult("engine", (output,), ("the engine runs only with the same TensorRT version and GPU model",))


def _triton(src: Path, output: Path, precision: str, max_batch: int, data, calibration_size: int, name: str | None,
            work: Path, say) -> ExportResult:
    from emolive.calibration.int8 import read_model_info

    from .tensorrt_engine import tensorrt_status
    from .triton import triton_model_name, write_triton_model

    info = read_model_info(src)
    model_name = triton_model_name(name or src.stem)
    notes: list[str] = []
    onnx_model, kind = src, None
    if precision == "int8" and info.precision != "int8":
        onnx_model, int8_notes = _int8(src, work / f"{src.stem}.int8.onnx", data, calibration_size, "cpu", say)
        notes += int8_notes
        kind = "KIND_CPU"  # the ORT model is the CPU-tuned INT8 QDQ; GPUs get the TensorRT model
    paths = [write_triton_model(output, model_name, "onnxruntime", onnx_model, onnx_model, info.labels, max_batch=max_batch, instance_kind=kind)]
    if precision in ("fp16", "int8"):
        ok, reason = tensorrt_status()
        if ok:
            plan = _plan(src, precision, max_batch, data, calibration_size, work, say)
            io_model = work / f"{src.stem}.int8-trt.onnx" if precision == "int8" and info.precision != "int8" else src
            paths.append(write_triton_model(output, f"{model_name}_trt", "tensorrt", plan, io_model, info.labels,
                                            max_batch=max_batch, instance_kind="KIND_GPU"))
        else:
            notes.append(f"TensorRT-backend model '{model_name}_trt' not written: {reason}; "
                         "run the same export on the GPU host to add it")
    return ExportResult("triton", tuple(paths), tuple(notes))


def _atomic_copy(src: Path, output: Path) -> None:
    from .sinks import atomic_path, prepare_output

    with atomic_path(prepare_output(output)) as tmp:
        shutil.copyfile(src, tmp)


__all__ = ["FORMATS", "ExportResult", "export_model", "source_onnx"]
