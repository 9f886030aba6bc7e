"""Static INT8 quantization of emolive ONNX models with ONNX Runtime (QDQ format).

A class-stratified calibration set is drawn from FER2013 Training and preprocessed by the shared
:func:`preprocess_faces`; ``quantize_static`` inserts QuantizeLinear/DequantizeLinear pairs with
per-channel int8 weights (7-bit ones for CPUs, see :class:`QuantizationSettings`). The quantized file
keeps the model's :class:`ModelInfo` (with ``precision="int8"``), so every engine loads it like the
FP32 model. :func:`build_int8_model` tries MinMax, Entropy and Percentile calibration and keeps the
most accurate on PublicTest.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emolive.models.errors import DataError, ModelError, OutputError, require
from emolive.models.info import METADATA_KEY, ModelInfo
from emolive.models.onnx_io import INPUT_NAME, set_metadata
from emolive.models.preprocess import PreprocessSpec, preprocess_faces

if TYPE_CHECKING:
    from emolive.training.data import FerSplit

CALIBRATION_METHODS: tuple[str, ...] = ("minmax", "entropy", "percentile")
QUANTIZATION_KEY = "emolive_quantization"
"""ONNX metadata key holding how a model was quantized (method, calibration size, seed, settings)."""


@dataclass(frozen=True)
class QuantizationSettings:
    """How ``quantize_static`` is called; the defaults are what measured fastest and accurate on CPU.

    ``activations``/``weights`` are ``"int8"`` or ``"uint8"`` (S8S8 = int8/int8, U8S8 = uint8/int8).
    ``reduce_range`` keeps int8 weights in 7 bits ([-64, 64]). ONNX Runtime's U8S8 kernels on x86 CPUs
    without VNNI (AVX2, AVX-512 without VNNI) multiply with VPMADDUBSW, whose 16-bit sums of pairs
    saturate with full-range weights: the default's INT8 file lost 2.6 points of PublicTest accuracy
    on an AVX2 AMD EPYC that way (0.6857 against 0.7119 on a VNNI Xeon). With 7-bit weights the pair
    sums fit (255 * 64 * 2 < 2**15), so a file gives the same results on every x86 CPU.
    TensorRT's explicit quantization needs symmetric int8 activations (zero point 0) and computes
    without that limit: see :data:`TENSORRT_SETTINGS`.
    """

    method: str = "minmax"
    per_channel: bool = True
    reduce_range: bool = True
    activations: str = "uint8"
    weights: str = "int8"
    quant_format: str = "qdq"
    percentile: float = 99.999
    symmetric_activations: bool = False

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, got {self.method!r}")
        if self.activations not in ("int8", "uint8") or self.weights not in ("int8", "uint8"):
            raise ValueError(f"activations/weights must be 'int8' or 'uint8', got {self.activations!r}/{self.weights!r}")
        if self.quant_format not in ("qdq", "qoperator"):
            raise ValueError(f"quant_format must be 'qdq' or 'qoperator', got {self.quant_format!r}")
        if self.symmetric_activations and self.activations != "int8":
            raise ValueError("symmetric activations need activations='int8'")

    def to_dict(self) -> dict[str, object]:
        return {"method": self.method, "per_channel": self.per_channel, "reduce_range": self.reduce_range,
                "activations": self.activations, "weights": self.weights, "format": self.quant_format,
                "symmetric_activations": self.symmetric_activations,
                **({"percentile": self.percentile} if self.method == "percentile" else {})}


CPU_SETTINGS = QuantizationSettings()
"""ONNX Runtime on x86 CPUs: QDQ, uint8 activations, per-channel 7-bit int8 weights (every Conv/Gemm runs int8)."""
TENSORRT_SETTINGS = QuantizationSettings(activations="int8", symmetric_activations=True, reduce_range=False)
"""TensorRT explicit quantization: QDQ, symmetric int8 activations and per-channel int8 weights."""


def stratified_indices(labels: np.ndarray, size: int, *, seed: int = 0) -> np.ndarray:
    """``size`` indices into ``labels`` with each class represented in proportion to its frequency.

    Every present class gets at least one image (rounding is largest-remainder); sorted, no repeats.
    """
    labels = np.asarray(labels)
    if size < 1:
        raise DataError(f"calibration size must be at least 1, got {size}")
    if size > len(labels):
        raise DataError(f"calibration size {size} is larger than the {len(labels)} images available; pass a smaller --calibration-size")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts / counts.sum() * size
    take = np.maximum(np.floor(exact).astype(int), 1 if size >= len(classes) else 0)
    take = np.minimum(take, counts)
    order = np.argsort(-(exact - np.floor(exact)))
    i = 0
    while take.sum() < size:  # hand out the rounding remainder, largest fraction first
        c = order[i % len(order)]
        if take[c] < counts[c]:
            take[c] += 1
        i += 1
    while take.sum() > size:  # the at-least-one rule overshot: trim the largest classes
        take[np.argmax(take)] -= 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), size=int(k), replace=False) for c, k in zip(classes, take) if k]
    return np.sort(np.concatenate(picked))


def preprocess_images(images: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Whole 48x48 FER2013 images (N, H, W) uint8 -> network input (N, 1, S, S) via :func:`preprocess_faces`."""
    if len(images) == 0:
        return np.empty((0, 1, spec.size, spec.size), dtype=np.float32)
    return np.concatenate([preprocess_faces(image, None, spec) for image in images])


def calibration_set(data: str | os.PathLike[str], spec: PreprocessSpec, *, size: int = 1000, seed: int = 0) -> np.ndarray:
    """A class-stratified sample of FER2013 Training, preprocessed: (size, 1, S, S) float32."""
    from emolive.training.data import load_fer2013

    train = load_fer2013(data, "Training")
    return preprocess_images(train.images[stratified_indices(train.labels, size, seed=seed)], spec)


def _reader_class():
    quantization = require("onnxruntime.quantization", "train", "INT8 quantization")

    class FaceCalibrationReader(quantization.CalibrationDataReader):
        """Feeds preprocessed faces to ``quantize_static`` in batches; rewindable."""

        def __init__(self, faces: np.ndarray, batch_size: int = 32) -> None:
            self.faces = np.ascontiguousarray(faces, dtype=np.float32)
            self.batch_size = batch_size
            self._batches: Iterator[dict[str, np.ndarray]] = self._iter()

        def _iter(self) -> Iterator[dict[str, np.ndarray]]:
            for start in range(0, len(self.faces), self.batch_size):
                yield {INPUT_NAME: self.faces[start:start + self.batch_size]}

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

        def rewind(self) -> None:
            self._batches = self._iter()

    return FaceCalibrationReader


def even_batch_size(n: int, cap: int = 50) -> int:
    """The largest batch size <= ``cap`` that divides ``n``: ORT's histogram (Entropy/Percentile)
    collectors stack per-batch outputs and fail on a shorter last batch."""
    return max(b for b in range(1, min(cap, n) + 1) if n % b == 0)


def calibration_reader(faces: np.ndarray, batch_size: int | None = None):
    """A ``CalibrationDataReader`` over preprocessed faces (N, 1, S, S), in equal-sized batches."""
    return _reader_class()(faces, batch_size or even_batch_size(len(faces)))


def read_model_info(path: str | os.PathLike[str]) -> ModelInfo:
    """The :class:`ModelInfo` stored in an ONNX file (read with ``onnx``, no session needed)."""
    proto = _load_proto(Path(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    return ModelInfo.from_json(meta.get(METADATA_KEY), str(path))


def quantize_int8(source: str | os.PathLike[str], output: str | os.PathLike[str], faces: np.ndarray,
                  settings: QuantizationSettings = QuantizationSettings(), *, metrics: dict[str, float] | None = None) -> Path:
    """Quantize the FP32 emolive model ``source`` to an INT8 QDQ model at ``output``.

    ``faces`` is the preprocessed calibration set. The model is first run through ORT's quantization
    pre-processing (symbolic shape inference, Conv+BatchNorm folding). The result carries the
    source's ModelInfo with ``precision="int8"`` (``metrics`` replace the FP32 figures when given)
    and the settings under :data:`QUANTIZATION_KEY`. Written to a temporary name, then renamed.
    """
    require("onnx", "train", "INT8 quantization")
    quantization = require("onnxruntime.quantization", "train", "INT8 quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, output = Path(source), Path(output)
    info = read_model_info(source)
    if info.precision != "fp32":
        raise ModelError(f"{source} is already {info.precision}; quantize the FP32 model instead")
    if faces.ndim != 4 or faces.shape[1:] != (1, info.preprocess.size, info.preprocess.size) or len(faces) == 0:
        raise DataError(f"calibration faces must be (N, 1, {info.preprocess.size}, {info.preprocess.size}), got {faces.shape}")
    methods = {"minmax": quantization.CalibrationMethod.MinMax, "entropy": quantization.CalibrationMethod.Entropy,
               "percentile": quantization.CalibrationMethod.Percentile}
    types = {"int8": quantization.QuantType.QInt8, "uint8": quantization.QuantType.QUInt8}
    formats = {"qdq": quantization.QuantFormat.QDQ, "qoperator": quantization.QuantFormat.QOperator}
    extra: dict[str, object] = {"ActivationSymmetric": settings.symmetric_activations}
    if settings.method == "percentile":
        extra["CalibPercentile"] = settings.percentile
    _prepare_folder(output)
    with tempfile.TemporaryDirectory(prefix="emolive-int8-") as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=False)
        quantized = Path(work) / "quantized.onnx"
        try:
            quantization.quantize_static(
                str(prepared), str(quantized), calibration_reader(faces),
                quant_format=formats[settings.quant_format], per_channel=settings.per_channel,
                reduce_range=settings.reduce_range, activation_type=types[settings.activations],
                weight_type=types[settings.weights], calibrate_method=methods[settings.method],
                extra_options=extra,
            )
        except (ValueError, RuntimeError) as exc:  # ORT's calibrators raise plain errors on graphs they cannot handle
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"ONNX Runtime could not quantize {source} with {settings.method} calibration ({reason})") from None
        int8_info = replace(info, precision="int8", metrics=dict(metrics) if metrics is not None else info.metrics)
        note = {**settings.to_dict(), "calibration_faces": int(len(faces))}
        _write_with_metadata(quantized, output, int8_info, note)
    return output


def _load_proto(path: Path):
    onnx = require("onnx", "train", "reading ONNX models")
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; pass an existing .onnx file")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelError(f"{path} is not a loadable ONNX model ({type(exc).__name__}); re-export it with 'emo-live export'") from None


def _prepare_folder(output: Path) -> None:
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {output.parent} ({exc.strerror}); choose a writable output path") from None


def _write_with_metadata(quantized: Path, output: Path, info: ModelInfo, note: dict[str, object]) -> None:
    _write_proto(_load_proto(quantized), output, info, note)


def _write_proto(proto, output: Path, info: ModelInfo, note: dict[str, object]) -> None:
    import onnx

    set_metadata(proto, info, {QUANTIZATION_KEY: json.dumps(note, sort_keys=True)}, variant=f"int8, {note.get('method', '?')} calibration")
    tmp = output.with_name(output.name + ".part")
    try:
        onnx.save_model(proto, str(tmp))
        os.replace(tmp, output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {output} ({exc.strerror}); choose a writable output path") from None


def _rewrite_metrics(model: Path, output: Path, metrics: dict[str, float]) -> None:
    """Copy ``model`` to ``output`` with the ModelInfo metrics replaced (the INT8 model's own figures)."""
    proto = _load_proto(model)
    meta = {p.key: p.value for p in proto.metadata_props}
    info = replace(ModelInfo.from_json(meta.get(METADATA_KEY), str(model)), metrics=dict(metrics))
    _write_proto(proto, output, info, json.loads(meta.get(QUANTIZATION_KEY, "{}")))


def scored_split(info: ModelInfo, data: str | os.PathLike[str], split: str) -> FerSplit:
    """``split`` labelled the way ``emo-live eval`` scores ``info``'s model: FER2013 labels, or FER+ majority labels
    (rows without one left out) for a FER+ model; a ModelError for a model predicting neither label set."""
    from emolive.training.evaluate import ground_truth

    return ground_truth(info, data, split)[0]


def split_accuracy(model: str | os.PathLike[str], images: np.ndarray, labels: np.ndarray, *, threads: int = 0,
                   batch_size: int = 256) -> float:
    """Top-1 accuracy of the ONNX model on whole-face FER2013 images through ONNX Runtime."""
    from emolive.realtime.engines import OnnxRuntimeEngine

    with OnnxRuntimeEngine(model, threads=threads) as engine:
        spec = engine.info.preprocess
        hits = 0
        for start in range(0, len(images), batch_size):
            batch = preprocess_images(images[start:start + batch_size], spec)
            hits += int((engine.logits(batch).argmax(axis=1) == labels[start:start + batch_size]).sum())
    return hits / max(len(images), 1)


@dataclass(frozen=True)
class Int8Candidate:
    """One calibration method's quantized model and its PublicTest accuracy."""

    method: str
    path: Path
    public_accuracy: float


def build_int8_model(source: str | os.PathLike[str], output: str | os.PathLike[str], data: str | os.PathLike[str], *,
                     calibration_size: int = 1000, seed: int = 0, methods: Sequence[str] = CALIBRATION_METHODS,
                     settings: QuantizationSettings = QuantizationSettings(), keep_candidates: Path | None = None,
                     threads: int = 0, progress=None) -> tuple[Path, list[Int8Candidate]]:
    """Quantize ``source`` once per calibration method, keep the best on PublicTest at ``output``.

    The kept model's metadata records its INT8 PublicTest accuracy, scored against the labels the model
    predicts (:func:`scored_split`). ``keep_candidates`` (a folder) also keeps every candidate as
    ``<stem>.int8-<method>.onnx``; otherwise they are deleted.
    """
    source, output = Path(source), Path(output)
    info = read_model_info(source)
    public = scored_split(info, data, "PublicTest")  # before calibrating: a model without known labels fails fast
    faces = calibration_set(data, info.preprocess, size=calibration_size, seed=seed)
    candidates: list[Int8Candidate] = []
    with tempfile.TemporaryDirectory(prefix="emolive-int8-") as work:
        folder = keep_candidates or Path(work)
        for method in methods:
            if progress:
                progress(f"calibrating with {method} on {len(faces)} faces")
            path = quantize_int8(source, folder / f"{source.stem}.int8-{method}.onnx", faces, replace(settings, method=method))
            candidates.append(Int8Candidate(method, path, split_accuracy(path, public.images, public.labels, threads=threads)))
        best = max(candidates, key=lambda c: c.public_accuracy)  # ties: the first method listed
        _prepare_folder(output)
        _rewrite_metrics(best.path, output, {"public_test_accuracy": round(best.public_accuracy, 4)})
    if keep_candidates is None:
        candidates = [replace(c, path=output if c is best else Path()) for c in candidates]
    return output, candidates
