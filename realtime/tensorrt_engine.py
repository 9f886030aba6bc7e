"""TensorRT engine (NVIDIA GPUs): build a serialized engine from an emolive ONNX model, cache it, run it.

FP32/FP16 engines come from the FP32 model; an INT8 model (the QDQ file from
``emo-live export --format onnx-int8 --precision int8``) builds with explicit quantization. A shipped
INT8 model made for the CPU builds from the FP32 model it was quantized from (FP16 by default). The
optimization profile covers 1..``max_batch`` faces. Engines are cached under
``$EMOLIVE_CACHE/engines`` (default ``~/.cache/emolive/engines``), keyed by the model's sha256, the
TensorRT version, the GPU name, precision and batch range. Device buffers and the stream come from
cuda-python (``cuda.bindings.runtime``); both packages are in the ``tensorrt`` extra.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.models.errors import EngineUnavailableError, ModelError
from emolive.models.onnx_io import FEATURES_NAME, INPUT_NAME, OUTPUT_NAME, open_onnx_session, read_onnx_info

from .engines import InferenceEngine, softmax

TRT_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
DEFAULT_MAX_BATCH = 64


def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise EngineUnavailableError(f"engine 'tensorrt' is not available: the 'tensorrt' package is not installed ({exc}); "
                                     "install it with: pip install 'emolive[tensorrt]', or use --engine onnxruntime") from None
    return trt


def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError as exc:
        raise EngineUnavailableError(f"engine 'tensorrt' is not available: cuda-python is not installed ({exc}); "
                                     "install it with: pip install 'emolive[tensorrt]', or use --engine onnxruntime") from None
    return cudart


def _check(result, what: str):
    """Unpack a cuda-python ``(err, *values)`` tuple; a CUDA error becomes EngineUnavailableError."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise EngineUnavailableError(f"CUDA call {what} failed ({getattr(err, 'name', err)}); check the NVIDIA driver or use --engine onnxruntime")
    return values[0] if len(values) == 1 else tuple(values)


def gpu_name(device: int = 0) -> str | None:
    """The name of CUDA device ``device``, or None when there is no usable GPU or no cuda-python."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        return None
    try:
        err, count = cudart.cudaGetDeviceCount()
        if int(err) != 0 or count <= device:
            return None
        err, props = cudart.cudaGetDeviceProperties(device)
        if int(err) != 0:
            return None
    except Exception:  # a missing or broken driver surfaces as various runtime errors
        return None
    name = props.name
    return (name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)).strip()


def tensorrt_status() -> tuple[bool, str]:
    """Whether the TensorRT engine can run here, and why not."""
    try:
        import tensorrt as trt
    except ImportError:
        return False, "the 'tensorrt' package is not installed (pip install 'emolive[tensorrt]')"
    try:
        import cuda.bindings.runtime  # noqa: F401
    except ImportError:
        return False, "cuda-python is not installed (pip install 'emolive[tensorrt]')"
    name = gpu_name()
    if name is None:
        return False, "no NVIDIA GPU is visible (CUDA reports no device)"
    return True, f"TensorRT {trt.__version__} on {name}"


def cache_dir() -> Path:
    """Where built engines are cached: ``$EMOLIVE_CACHE/engines`` (default ``~/.cache/emolive/engines``)."""
    return Path(os.environ.get("EMOLIVE_CACHE", Path.home() / ".cache" / "emolive")) / "engines"


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on; a change in any part means a rebuild."""

    model_sha256: str
    tensorrt_version: str
    gpu: str
    precision: str
    max_batch: int

    def digest(self) -> str:
        text = "|".join([self.model_sha256, self.tensorrt_version, self.gpu, self.precision, str(self.max_batch), "v1"])
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def path(self, stem: str, root: Path | None = None) -> Path:
        return (root or cache_dir()) / f"{stem}-{self.precision}-b{self.max_batch}-{self.digest()}.plan"


def profile_shapes(size: int, max_batch: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) input shapes of the optimization profile: 1..max_batch faces, tuned for 8."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    return (1, 1, size, size), (min(8, max_batch), 1, size, size), (max_batch, 1, size, size)


def resolve_precision(requested: str | None, model_precision: str) -> str:
    """The engine precision: an INT8 (QDQ) model builds INT8; otherwise ``requested`` (default fp16)."""
    if model_precision == "int8":
        if requested not in (None, "int8"):
            raise ModelError(f"the model is INT8-quantized (QDQ); it builds only as an int8 engine, not {requested}")
        return "int8"
    precision = requested or "fp16"
    if precision == "int8":
        raise ModelError("an int8 TensorRT engine needs an INT8 QDQ model; make one with "
                         "'emo-live export MODEL --format onnx-int8 --precision int8 --data FER2013' and pass that")
    if precision not in TRT_PRECISIONS:
        raise ModelError(f"unknown TensorRT precision '{precision}'; choose one of {', '.join(TRT_PRECISIONS)}")
    return precision


def check_tensorrt_int8(metadata: dict[str, str], path: Path) -> None:
    """TensorRT takes only symmetric int8 Q/DQ (zero point 0); a CPU-flavoured INT8 model is refused clearly."""
    from emolive.calibration.int8 import QUANTIZATION_KEY

    note = json.loads(metadata.get(QUANTIZATION_KEY) or "{}")
    if note.get("activations") != "int8" or not note.get("symmetric_activations"):
        raise ModelError(f"{path} was quantized for ONNX Runtime on CPU (asymmetric {note.get('activations', '?')} activations); "
                         "TensorRT needs symmetric int8: re-export with 'emo-live export MODEL --format onnx-int8 --precision int8 --target tensorrt'")


def build_serialized_engine(onnx_path: Path, precision: str, max_batch: int, size: int, *, workspace_mb: int = 1024) -> bytes:
    """Parse ``onnx_path`` and build a serialized TensorRT engine (explicit batch, one optimization profile)."""
    trt = _import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if precision == "int8" and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        # Explicit quantization: the Q/DQ nodes fix where int8 runs; no precision flags with strong typing.
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)  # TensorRT 10 networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes(), str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT cannot parse {onnx_path} ({errors[:300]}); re-export it with 'emo-live export'")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8" and not flags:
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, *profile_shapes(size, max_batch))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"TensorRT could not build a {precision} engine from {onnx_path} (see the TensorRT log above)")
    return bytes(serialized)


def load_or_build_engine(onnx_path: Path, precision: str, max_batch: int, size: int, *, root: Path | None = None) -> tuple[Path, bool]:
    """The cached engine file for this model/TensorRT/GPU/precision/batch range, built on a miss.

    Returns the path and whether it came from the cache. Written atomically (temporary name, rename).
    """
    from emolive.models.shipped import file_sha256

    trt = _import_tensorrt()
    name = gpu_name()
    if name is None:
        raise EngineUnavailableError("engine 'tensorrt' is not available: no NVIDIA GPU is visible; use --engine onnxruntime")
    key = EngineKey(file_sha256(onnx_path), trt.__version__, name, precision, max_batch)
    path = key.path(onnx_path.stem, root)
    if path.is_file() and path.stat().st_size > 0:
        return path, True
    data = build_serialized_engine(onnx_path, precision, max_batch, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path, False


def tensorrt_source(path: Path, requested: str | None) -> Path:
    """The ONNX file TensorRT builds from for ``path`` at the ``requested`` precision.

    A shipped INT8 model quantized for the CPU (asymmetric activations, which TensorRT refuses), or
    one asked for at fp16/fp32, builds from the FP32 model it was quantized from; anything else builds
    from ``path`` itself (and errors clearly where that cannot work).
    """
    from emolive.models.shipped import fp32_source

    source = fp32_source(path)  # set only for shipped INT8 files
    if source is None or requested == "int8":
        return path
    if requested is None:
        try:
            check_tensorrt_int8(open_onnx_session(path).get_modelmeta().custom_metadata_map, path)
            return path  # already TensorRT-flavoured INT8
        except ModelError:
            pass
    return source


class TensorRTEngine(InferenceEngine):
    """A TensorRT execution context over device buffers sized for ``max_batch`` faces."""

    name = "tensorrt"

    def __init__(self, path: str | Path, *, precision: str | None = None, max_batch: int = DEFAULT_MAX_BATCH,
                 cache_root: Path | None = None) -> None:
        trt = _import_tensorrt()
        cudart = _import_cudart()
        self.path = tensorrt_source(Path(path), precision)
        session = open_onnx_session(self.path)
        self.info = read_onnx_info(session)
        self.precision = resolve_precision(precision, self.info.precision)
        if self.precision == "int8":
            check_tensorrt_int8(session.get_modelmeta().custom_metadata_map, self.path)
        del session
        self.max_batch = max_batch
        size = self.info.preprocess.size
        self.plan, self.cache_hit = load_or_build_engine(self.path, self.precision, max_batch, size, root=cache_root)
        self._cudart = cudart
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.plan.read_bytes())
        if self._engine is None:
            raise ModelError(f"TensorRT could not load the cached engine {self.plan}; delete it to rebuild")
        self._context = self._engine.create_execution_context()
        self._stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        # Every I/O tensor needs a device address (exported models may carry a 'features' output too).
        self._buffers: dict[str, tuple[int, np.dtype, tuple[int, ...]]] = {}
        for i in range(self._engine.num_io_tensors):
            tensor = self._engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(tensor)))
            tail = tuple(int(d) for d in self._engine.get_tensor_shape(tensor))[1:]
            pointer = _check(cudart.cudaMalloc(max_batch * int(np.prod(tail)) * dtype.itemsize), "cudaMalloc")
            self._buffers[tensor] = (int(pointer), dtype, tail)
            self._context.set_tensor_address(tensor, int(pointer))
        if INPUT_NAME not in self._buffers or OUTPUT_NAME not in self._buffers:
            raise ModelError(f"the engine for {self.path} lacks '{INPUT_NAME}' or '{OUTPUT_NAME}'; re-export the model")

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self._outputs(batch, (OUTPUT_NAME,))[0]

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and, when the engine has the exported ``features`` output, the penultimate features."""
        if FEATURES_NAME not in self._buffers or len(batch) == 0:
            return super().infer(batch)
        logits, features = self._outputs(batch, (OUTPUT_NAME, FEATURES_NAME))
        return softmax(logits, self.info.temperature), features

    def _outputs(self, batch: np.ndarray, names: tuple[str, ...]) -> list[np.ndarray]:
        """The named outputs for ``batch``, run in chunks of at most ``max_batch`` faces."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        chunks = [self._run(batch[start:start + self.max_batch], names) for start in range(0, len(batch), self.max_batch)]
        if not chunks:
            return [np.empty((0, *self._buffers[name][2]), np.float32) for name in names]
        return [np.concatenate([chunk[i] for chunk in chunks]) for i in range(len(names))]

    def _run(self, chunk: np.ndarray, names: tuple[str, ...]) -> list[np.ndarray]:
        cudart = self._cudart
        d_input = self._buffers[INPUT_NAME][0]
        self._context.set_input_shape(INPUT_NAME, chunk.shape)
        _check(cudart.cudaMemcpyAsync(d_input, chunk.ctypes.data, chunk.nbytes,
                                      cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self._stream), "cudaMemcpyAsync")
        if not self._context.execute_async_v3(int(self._stream)):
            raise ModelError(f"TensorRT inference failed on a batch of {len(chunk)} faces")
        outputs = []
        for name in names:
            pointer, dtype, tail = self._buffers[name]
            out = np.empty((len(chunk), *tail), dtype=dtype)
            _check(cudart.cudaMemcpyAsync(out.ctypes.data, pointer, out.nbytes,
                                          cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self._stream), "cudaMemcpyAsync")
            outputs.append(out)
        _check(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return [out.astype(np.float32, copy=False) for out in outputs]

    def close(self) -> None:
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for pointer, _, _ in getattr(self, "_buffers", {}).values():
            cudart.cudaFree(pointer)
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
        self._buffers, self._stream = {}, None
        self._context = self._engine = self._runtime = None
        self._cudart = None
